"""ffnn's own exceptions: each carries one line that says what is wrong and what is allowed."""

import numbers


class FFNNError(Exception):
    """Base class of every error ffnn raises on purpose (bad input, bad file, bad configuration)."""


class ConfigError(FFNNError, ValueError):
    """An argument or configuration value is not allowed."""


class DataError(FFNNError, ValueError):
    """A dataset, data file or array given to ffnn is unusable."""


class ModelFileError(FFNNError, ValueError):
    """A model or checkpoint file cannot be read."""


class TrainingDiverged(FFNNError, ArithmeticError):
    """The training loss became NaN or infinite."""


def unknown_name(kind, name, valid):
    """A ConfigError for a name that is not in a registry, listing the valid ones."""
    return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")


def plural(n, word):
    """``1 epoch``, ``2 epochs``: a count in a message."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def positive_int(name, value):
    """``value`` as an int when it is a positive integer (NumPy's too); a ConfigError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")
    return int(value)
