"""Weight initialisation: name -> fn(fan_in, fan_out, rng) returning W of the lecture's shape (fan_out, fan_in).

Biases always start at zero.
"""

import numpy as np

from .errors import unknown_name


def random(fan_in, fan_out, rng):
    """Small normal weights, N(0, 0.01^2): the lecture's 'random' initialisation."""
    return rng.normal(0.0, 0.01, size=(fan_out, fan_in))


def xavier(fan_in, fan_out, rng):
    """Glorot/Xavier uniform: U(-r, r) with r = sqrt(6 / (fan_in + fan_out)); keeps tanh/logistic layers' variance."""
    r = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=(fan_out, fan_in))


def he(fan_in, fan_out, rng):
    """He/Kaiming normal: N(0, 2 / fan_in); keeps ReLU layers' variance."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))


INITIALIZERS = {"random": random, "xavier": xavier, "he": he}
ALIASES = {"glorot": "xavier", "kaiming": "he", "normal": "random"}


def get_initializer(name):
    """Return the initializer registered under ``name`` (case-insensitive: 'Xavier' accepted)."""
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in INITIALIZERS:
        raise unknown_name("init", name, list(INITIALIZERS) + list(ALIASES))
    return INITIALIZERS[key]
