"""Hidden-layer activations g and their derivatives g', as pairs in one registry.

Each pair computes, for a pre-activation ``a`` of any shape,

    h = g(a)                      (lecture: h_k = g(a_k))
    g'(a), given a and h = g(a)   (lecture: sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2)

Both functions write into ``out`` when it is given (the training loop passes preallocated arrays)
and return it. They use only ufuncs, so they work unchanged on any array module that implements
NumPy's ufunc protocol.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import kernels
from .errors import unknown_name


@dataclass(frozen=True)
class Activation:
    """A hidden-layer activation: ``g(a, out)`` and ``g_prime(a, h, out)``."""

    name: str
    g: Callable
    g_prime: Callable

    def forward(self, a, b, out):
        """a += b, then h = g(a) written into ``out``: the bias of a_k = b_k + W_k h_{k-1}, then h_k = g(a_k).

        On a GPU one kernel does both for the built-in activations (see :mod:`ffnn.kernels`).
        """
        if not kernels.forward(_number(FUSED_G, self.g), a, b, out):
            a += b
            self.g(a, out=out)
        return out

    def backward(self, a, h, grad_h, out):
        """grad_a = grad_h (elementwise) g'(a), written into ``out`` (back_propagation's last line per layer).

        For the built-in activations one compiled pass does it where ffnn's kernels are built (see
        :mod:`ffnn.kernels`), with the same numbers as these two NumPy steps.
        """
        if not kernels.backward(_number(COMPILED_G_PRIME, self.g_prime), a, h, grad_h, out):
            self.g_prime(a, h, out=out)
            out *= grad_h
        return out

    def __repr__(self):
        return f"Activation({self.name!r})"


def logistic(a, out=None):
    # sigma(a) = 1 / (1 + e^-a), as written: accurate to the last bits for every a (for a << 0 it is e^a, however
    # small), where (1 + tanh(a/2)) / 2 cancels. For a below about -88 (float32) e^-a overflows to inf and sigma is
    # 0, its value rounded: that overflow (and e^-a underflowing for large a) is expected, not worth a warning.
    with np.errstate(over="ignore", under="ignore"):
        out = np.negative(a, out=out)
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def logistic_prime(a, h, out=None):
    # sigma'(a) = sigma(a) (1 - sigma(a))
    out = np.subtract(1, h, out=out)
    return np.multiply(out, h, out=out)


def tanh(a, out=None):
    return np.tanh(a, out=out)


def tanh_prime(a, h, out=None):
    # tanh'(a) = 1 - tanh(a)^2
    out = np.multiply(h, h, out=out)
    return np.subtract(1, out, out=out)


def identity(a, out=None):
    if out is None:
        return a.copy()
    np.copyto(out, a)
    return out


def identity_prime(a, h, out=None):
    if out is None:
        return np.ones_like(a)
    out.fill(1)
    return out


def relu(a, out=None):
    return np.maximum(a, 0, out=out)


def relu_prime(a, h, out=None):
    # relu'(a) = 1 where a > 0, else 0 (0 at a = 0, as in every major library)
    if out is None:
        return (a > 0).astype(a.dtype)
    return np.greater(a, 0, out=out)


# The derivatives _kernels.c computes fused with the product (by the numbers kernels.backward takes); any other
# g', such as a user's own, goes through NumPy.
COMPILED_G_PRIME = {tanh_prime: 0, logistic_prime: 1, relu_prime: 2, identity_prime: 3}

# The activations a GPU kernel computes fused with the bias (kernels.forward), by the same numbers.
FUSED_G = {tanh: 0, logistic: 1, relu: 2, identity: 3}


def _number(table, fn):
    # fn's number in table, found by identity: a function of one's own need not be hashable
    return next((number for f, number in table.items() if f is fn), None)

ACTIVATIONS = {
    "logistic": Activation("logistic", logistic, logistic_prime),
    "tanh": Activation("tanh", tanh, tanh_prime),
    "identity": Activation("identity", identity, identity_prime),
    "relu": Activation("relu", relu, relu_prime),
}

# The course's and other libraries' spellings of the same functions.
ALIASES = {"sigmoid": "logistic", "linear": "identity"}


def get_activation(name):
    """Return the Activation registered under ``name`` (case-insensitive; 'sigmoid', 'ReLU' accepted)."""
    if isinstance(name, Activation):
        return name
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        raise unknown_name("activation", name, list(ACTIVATIONS) + list(ALIASES))
    return ACTIVATIONS[key]
