"""Learning-rate schedules: the learning rate eta of each epoch, as a function of the epoch (and, for
reduce-on-plateau, of the validation loss so far).

``rate(epoch)`` gives the multiplier of the base learning rate for a 0-based epoch; ``observe(loss)`` is called
after each epoch with the monitored loss. State (plateau's) is saved with checkpoints so a resumed run follows
the same schedule.
"""

import math

from .errors import ConfigError, unknown_name


class Schedule:
    name = "constant"

    def __init__(self, **_):
        pass

    def rate(self, epoch):
        return 1.0

    def observe(self, loss):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Constant(Schedule):
    """eta_t = eta"""


class Step(Schedule):
    """eta_t = eta * gamma^floor(t / step_size)"""

    name = "step"

    def __init__(self, step_size=10, gamma=0.5, **_):
        self.step_size, self.gamma = int(step_size), float(gamma)

    def rate(self, epoch):
        return self.gamma ** (epoch // self.step_size)


class Exponential(Schedule):
    """eta_t = eta * gamma^t"""

    name = "exponential"

    def __init__(self, gamma=0.95, **_):
        self.gamma = float(gamma)

    def rate(self, epoch):
        return self.gamma ** epoch


class Cosine(Schedule):
    """eta_t = eta_min + (eta - eta_min) (1 + cos(pi t / T)) / 2 over the run's T epochs (eta_min = min_factor eta)"""

    name = "cosine"

    def __init__(self, epochs=10, min_factor=0.0, **_):
        self.epochs, self.min_factor = max(int(epochs), 1), float(min_factor)

    def rate(self, epoch):
        return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * epoch / self.epochs)) / 2


class Plateau(Schedule):
    """Multiply eta by gamma after ``patience`` epochs without a lower monitored loss (never below min_factor)."""

    name = "plateau"

    def __init__(self, gamma=0.5, patience=2, min_factor=1e-3, **_):
        self.gamma, self.patience, self.min_factor = float(gamma), int(patience), float(min_factor)
        self.factor, self.best, self.wait = 1.0, math.inf, 0

    def rate(self, epoch):
        return self.factor

    def observe(self, loss):
        if loss < self.best:
            self.best, self.wait = loss, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.factor, self.wait = max(self.factor * self.gamma, self.min_factor), 0

    def state_dict(self):
        return {"factor": self.factor, "best": self.best, "wait": self.wait}

    def load_state_dict(self, state):
        self.factor, self.best, self.wait = float(state["factor"]), float(state["best"]), int(state["wait"])


SCHEDULES = {cls.name: cls for cls in (Constant, Step, Exponential, Cosine, Plateau)}


def get_schedule(name, **kwargs):
    """A schedule by name: constant, step (step_size, gamma), exponential (gamma), cosine (epochs, min_factor),
    plateau (gamma, patience, min_factor)."""
    if isinstance(name, Schedule):
        return name
    key = "constant" if name is None else str(name).lower()
    if key not in SCHEDULES:
        raise unknown_name("learning-rate schedule", name, SCHEDULES)
    gamma = kwargs.get("gamma")
    if gamma is not None and not (0 < gamma <= 1):
        raise ConfigError(f"lr_gamma must be in (0, 1]; got {gamma!r}")
    return SCHEDULES[key](**{k: v for k, v in kwargs.items() if v is not None})
