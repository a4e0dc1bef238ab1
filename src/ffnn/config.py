"""One typed configuration for a training run, validated in one place.

The field names are the command line's long flags (``--batch_size`` -> ``batch_size``), so a YAML config file,
a sweep and the CLI all speak the same keys.
"""

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from typing import Optional

from .activations import get_activation
from .backend import DEVICES
from .errors import ConfigError
from .initializers import get_initializer
from .network import DTYPES
from .optimizers import DECAY_RATES, OPTIMIZERS
from .outputs import canonical_loss, canonical_output


# The course assignment's short flags and a few common spellings -> TrainConfig fields (config and sweep files).
ALIASES = {"d": "dataset", "e": "epochs", "b": "batch_size", "bs": "batch_size", "l": "loss", "o": "optimizer",
           "lr": "learning_rate", "m": "momentum", "eps": "epsilon", "w_d": "weight_decay", "wd": "weight_decay",
           "w_i": "weight_init", "init": "weight_init", "nhl": "num_layers", "hidden_layers": "num_layers",
           "num_hidden_layers": "num_layers", "sz": "hidden_size", "a": "activation"}


def config_key(key):
    """A key of a config or sweep file as the TrainConfig field it names (``nhl`` -> ``num_layers``)."""
    key = str(key).replace("-", "_")
    return ALIASES.get(key, ALIASES.get(key.lower(), key))


OPTIMIZER_FIELDS = DECAY_RATES + ("epsilon",)  # the rules' hyperparameters a config holds


@dataclass
class TrainConfig:
    """A training run. Defaults reach about 0.89 test accuracy on Fashion-MNIST in well under a minute."""

    dataset: str = "fashion_mnist"         # a registered name, or a .csv / .npz file
    data_dir: Optional[str] = None         # where to look for dataset files first
    target: Optional[str] = None           # target column of a CSV dataset
    epochs: int = 20                       # passes over the training data
    batch_size: int = 64                   # examples per gradient step
    loss: Optional[str] = None             # cross_entropy (classes) / squared_error (regression) when unset
    output: Optional[str] = None           # softmax (classes) / linear (regression) when unset
    optimizer: str = "adam"                # sgd, momentum, nag, rmsprop, adam, nadam
    learning_rate: float = 1e-3            # eta
    momentum: float = 0.9                  # momentum and nag
    beta: float = 0.9                      # rmsprop's decay of the squared-gradient average
    beta1: float = 0.9                     # adam and nadam: first-moment decay
    beta2: float = 0.999                   # adam and nadam: second-moment decay
    epsilon: float = 1e-8                  # rmsprop, adam, nadam: added to the denominator
    weight_decay: float = 0.0              # L2 penalty on the weights
    weight_init: str = "xavier"            # random, xavier, he
    num_layers: int = 2                    # hidden layers (when hidden_sizes is not given)
    hidden_size: int = 128                 # width of each hidden layer (when hidden_sizes is not given)
    hidden_sizes: Optional[list] = None    # explicit hidden widths, e.g. [256, 128]; [] for none
    activation: str = "tanh"               # identity, sigmoid, tanh, ReLU
    dropout: float = 0.0                   # probability of dropping a hidden unit while training
    lr_schedule: str = "cosine"            # constant, step, exponential, cosine, plateau
    lr_gamma: Optional[float] = None       # step/exponential/plateau decay factor (0.5, 0.95, 0.5 when unset)
    lr_step_size: Optional[int] = None     # step: epochs between decays (10 when unset)
    lr_min_factor: Optional[float] = None  # cosine/plateau: lowest rate as a fraction of learning_rate
    label_smoothing: float = 0.0           # train against (1 - s) e(l) + s / k
    decoupled_weight_decay: bool = False   # AdamW-style decay W <- W (1 - eta weight_decay) instead of L2
    val_fraction: float = 0.1              # share of the training data held out for validation
    patience: Optional[int] = None         # early stopping after this many epochs without improvement
    seed: int = 0                          # weights, validation split and shuffling
    dtype: str = "float32"                 # float32 or float64
    device: str = "cpu"                    # cpu or cuda
    output_dir: str = "runs"               # run folders are created inside it
    name: Optional[str] = None             # run folder name (default: built from the settings)
    extra: dict = field(default_factory=dict)  # keys other tools add (ignored by training)

    @property
    def hidden(self):
        """The hidden widths: ``hidden_sizes`` if given, else ``num_layers`` x ``hidden_size``."""
        if self.hidden_sizes is not None:
            return [int(s) for s in self.hidden_sizes]
        return [int(self.hidden_size)] * int(self.num_layers)

    def optimizer_kwargs(self):
        """The hyperparameters the chosen optimizer takes."""
        names = OPTIMIZERS[self.optimizer.lower()].hyperparameters
        # a user's rule gets these fields where it takes them, and its own defaults for the rest
        return {k: getattr(self, k) for k in names if k in OPTIMIZER_FIELDS}

    def schedule(self):
        """The learning-rate schedule these settings describe."""
        from .schedules import get_schedule

        return get_schedule(self.lr_schedule, epochs=self.epochs, gamma=self.lr_gamma, step_size=self.lr_step_size,
                            min_factor=self.lr_min_factor)

    def run_name(self):
        """A readable name such as ``hl_2_sz_128_bs_64_ac_tanh_o_adam``."""
        if self.name:
            return self.name
        hidden = self.hidden
        sz = hidden[0] if len(set(hidden)) == 1 else "-".join(map(str, hidden))
        loss = "_l_mse" if self.loss and canonical_loss(self.loss) == "squared_error" else ""  # not the default
        return (f"hl_{len(hidden)}_sz_{sz if hidden else 0}_bs_{self.batch_size}_ac_{self.activation.lower()}"
                f"_o_{self.optimizer.lower()}{loss}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source="configuration"):
        """A validated TrainConfig from a dict; unknown keys are an error naming the valid ones."""
        names = {f.name for f in fields(cls)}
        normalised = {}
        for key, value in values.items():
            k = config_key(key)
            if k not in names:
                raise ConfigError(f"{source}: unknown key {key!r}; valid keys: "
                                  f"{', '.join(sorted(names - {'extra'}))}")
            if k in normalised:
                raise ConfigError(f"{source}: {key!r} sets {k!r} a second time")
            normalised[k] = value
        for f in fields(cls):
            # YAML reads 1e-3 (no decimal point) as text; numbers written that way are still numbers.
            if f.type in (float, Optional[float]) and isinstance(normalised.get(f.name), str):
                try:
                    normalised[f.name] = float(normalised[f.name])
                except ValueError:
                    pass  # validate() names the field
        return cls(**normalised).validate()

    def validate(self):
        """Check every field; raise ConfigError (what is wrong, what is allowed) or return self."""
        def positive_int(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer; got {v!r}")

        def number(name, low=None, high=None, low_open=False, high_open=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{name} must be a number; got {v!r}")
            if low is not None and (v < low or (low_open and v == low)):
                raise ConfigError(f"{name} must be {'>' if low_open else '>='} {low}; got {v!r}")
            if high is not None and (v > high or (high_open and v == high)):
                raise ConfigError(f"{name} must be {'<' if high_open else '<='} {high}; got {v!r}")

        for name in ("epochs", "batch_size", "num_layers", "hidden_size"):
            if name == "num_layers" and self.num_layers == 0:
                continue
            positive_int(name)
        positive_int("patience", allow_none=True)
        if self.hidden_sizes is not None:
            if not isinstance(self.hidden_sizes, (list, tuple)) or not all(
                    isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in self.hidden_sizes):
                raise ConfigError(f"hidden_sizes must be a list of positive integers; got {self.hidden_sizes!r}")
            self.hidden_sizes = list(self.hidden_sizes)
        number("learning_rate", 0, low_open=True)
        number("momentum", 0, 1, high_open=True)
        number("beta", 0, 1, high_open=True)
        number("beta1", 0, 1, high_open=True)
        number("beta2", 0, 1, high_open=True)
        number("epsilon", 0, low_open=True)
        number("weight_decay", 0)
        number("val_fraction", 0, 1, high_open=True)
        number("dropout", 0, 1, high_open=True)
        number("label_smoothing", 0, 1, high_open=True)
        if self.lr_gamma is not None:
            number("lr_gamma", 0, 1, low_open=True)
        if self.lr_min_factor is not None:
            number("lr_min_factor", 0, 1)
        positive_int("lr_step_size", allow_none=True)
        if not isinstance(self.decoupled_weight_decay, bool):
            raise ConfigError(f"decoupled_weight_decay must be true or false; got {self.decoupled_weight_decay!r}")
        self.schedule()
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer; got {self.seed!r}")
        get_activation(self.activation)
        get_initializer(self.weight_init)
        if str(self.optimizer).lower() not in OPTIMIZERS:
            from .errors import unknown_name
            raise unknown_name("optimizer", self.optimizer, OPTIMIZERS)
        if self.loss is not None:
            canonical_loss(self.loss)
        if self.output is not None:
            canonical_output(self.output)
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {self.device!r}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"dataset must be a dataset name or a file path; got {self.dataset!r}")
        if self.name is not None and (not isinstance(self.name, str) or self.name.strip() in ("", ".", "..")
                                      or any(sep and sep in self.name for sep in ("/", os.sep, os.altsep))):
            raise ConfigError(f"name must be a plain folder name (no path separators, not '.' or '..'); "
                              f"got {self.name!r}")
        # one spelling of each name (Xavier and xavier are one setting, in config.json and in reports alike)
        for name in ("activation", "weight_init", "optimizer", "lr_schedule"):
            setattr(self, name, str(getattr(self, name)).lower())
        return self
