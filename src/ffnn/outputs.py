"""Output functions O, losses, and the gradient of the loss with respect to a_L for each valid pair.

Conventions (for a batch of N examples; arrays are batch-major, shape (N, k)):

- ``y`` is either integer class labels, shape (N,), or real targets, shape (N, k).
- cross-entropy: ``mean over examples of -log y_hat[label]`` (lecture: L = -log y_hat_l);
- squared error: ``mean over examples of sum over outputs (y_hat - y)^2`` (no factor 1/2);
- every gradient is of that batch mean, so it carries a factor 1/N.

Valid pairs and how grad_aL is computed:

- softmax + cross_entropy: the fused ``grad_aL = y_hat - e(l)`` (lecture: -(e(l) - y_hat)); it holds
  only for this pair.
- softmax + squared_error: ``grad_yhat = 2 (y_hat - y)`` through the full softmax Jacobian
  ``d y_hat_i / d a_j = y_hat_i (delta_ij - y_hat_j)``.
- linear + squared_error: ``grad_aL = 2 (y_hat - y)`` (regression, any number of outputs).

linear + cross_entropy is refused: -log of an unbounded real number is not a loss.
"""

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import cuda
from .errors import ConfigError, unknown_name


def softmax(a, out=None):
    # Subtracting a constant from a row leaves its softmax unchanged; subtracting at least the row's maximum keeps
    # exp from overflowing. When all of a lies within SPREAD of its maximum, that one maximum serves every row: each
    # exp is then at least e^-SPREAD, a normal float, so no row sums to zero and nothing loses precision. It saves
    # the per-row reductions, which are slow over rows of a few outputs. Otherwise each row uses its own maximum.
    # On a GPU one kernel does it row by row.
    if type(a) is not np.ndarray and cuda.is_array(a):
        return cuda.softmax(a, out)
    top = a.max()
    shift = top if top - a.min() < SPREAD else a.max(axis=1, keepdims=True)
    out = np.subtract(a, shift, out=out)
    np.exp(out, out=out)
    # Row sums by einsum, whose loop over a short row is as quick as a product with a column of ones and, unlike
    # BLAS, gives the same bits on any number of threads (see ffnn.threads).
    out /= np.einsum("ij->i", out)[:, None]
    return out


SPREAD = 60.0  # e^-60 ~ 1e-26 is far above float32's smallest normal number, 1e-38


@functools.lru_cache(maxsize=32)
def _rows(n):
    # 0..n-1, made once per batch size: with the labels it picks y_hat[i, label_i] from each row i.
    return np.arange(n)


def linear(a, out=None):
    if out is None:
        return a.copy()
    np.copyto(out, a)
    return out


def one_hot(labels, k, dtype):
    """e(l) for each label: shape (N, k)."""
    xp = cuda.cupy if cuda.is_array(labels) else np
    e = xp.zeros((labels.shape[0], k), dtype=dtype)
    e[xp.arange(labels.shape[0]), labels] = 1
    return e


def _targets(y, k, dtype):
    # 1-D y: class labels for several outputs, the targets themselves for a single output
    if y.ndim == 1:
        return one_hot(y, k, dtype) if k > 1 else y.reshape(-1, 1)
    return y


def cross_entropy(a, y_hat, y):
    """mean(-log y_hat[label]), computed from a_L as log-sum-exp so it stays finite for |a| up to 1e4."""
    if type(a) is not np.ndarray and cuda.is_array(a):
        return cuda.loss("cross_entropy", a, y_hat, y)
    if y.ndim == 1:
        picked = y_hat[_rows(y.shape[0]), y]
        if picked.min() > 1e-30:  # every y_hat[label] is a normal number: -log of it is accurate, and cheaper
            return -float(np.log(picked, out=picked).sum()) / y.shape[0]
    m = a.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(a - m).sum(axis=1, keepdims=True)) + m
    if y.ndim == 1:
        picked = np.take_along_axis(a, y[:, None], axis=1)
        return float(np.mean(log_sum - picked))
    # Soft or one-hot targets: -sum_j y_j log y_hat_j.
    return float(np.mean(np.sum(y * (log_sum - a), axis=1)))


def squared_error(a, y_hat, y):
    """mean over examples of sum over outputs (y_hat - y)^2."""
    if type(a) is not np.ndarray and cuda.is_array(a):
        return cuda.loss("squared_error", a, y_hat, y)
    diff = y_hat - _targets(y, y_hat.shape[1], y_hat.dtype)
    return float(np.mean(np.sum(diff * diff, axis=1)))


def grad_softmax_cross_entropy(a, y_hat, y, out=None):
    # grad_aL = -(e(l) - y_hat) / N
    if type(y_hat) is not np.ndarray and cuda.is_array(y_hat):
        return cuda.grad_softmax_cross_entropy(y_hat, y, out)
    n = y_hat.shape[0]
    if out is None:
        out = np.empty_like(y_hat)
    np.copyto(out, y_hat)
    if y.ndim == 1:
        out[_rows(n), y] -= 1
    else:
        out -= y
    out *= 1.0 / n
    return out


def grad_softmax_squared_error(a, y_hat, y, out=None):
    # grad_yhat = 2 (y_hat - y) / N; grad_a_j = sum_i grad_yhat_i y_hat_i (delta_ij - y_hat_j)
    #                                         = y_hat_j (grad_yhat_j - sum_i grad_yhat_i y_hat_i)
    n = y_hat.shape[0]
    grad_y_hat = (y_hat - _targets(y, y_hat.shape[1], y_hat.dtype)) * (2.0 / n)
    inner = np.sum(grad_y_hat * y_hat, axis=1, keepdims=True)
    return np.multiply(y_hat, grad_y_hat - inner, out=out)


def grad_linear_squared_error(a, y_hat, y, out=None):
    # y_hat = a_L, so grad_aL = grad_yhat = 2 (y_hat - y) / N
    n = y_hat.shape[0]
    out = np.subtract(y_hat, _targets(y, y_hat.shape[1], y_hat.dtype), out=out)
    out *= 2.0 / n
    return out


@dataclass(frozen=True)
class OutputLayer:
    """An output function O with its loss and the gradient of that loss with respect to a_L."""

    output: str
    loss_name: str
    O: Callable          # O(a, out) -> y_hat
    loss: Callable       # loss(a, y_hat, y) -> float, mean over the batch
    grad_a: Callable     # grad_a(a, y_hat, y, out) -> d loss / d a_L, shape (N, k)

    def forward(self, a, b, out):
        """a += b, then y_hat = O(a) written into ``out``: the bias of a_L = b_L + W_L h_{L-1}, then y_hat = O(a_L).

        On a GPU one kernel does both for softmax.
        """
        if not (self.O is softmax and type(a) is not np.ndarray and cuda.is_array(a)
                and cuda.add_bias_softmax(a, b, out)):
            a += b
            self.O(a, out=out)
        return out


OUTPUTS = {"softmax": softmax, "linear": linear}
LOSSES = {"cross_entropy": cross_entropy, "squared_error": squared_error}
GRADIENTS = {
    ("softmax", "cross_entropy"): grad_softmax_cross_entropy,
    ("softmax", "squared_error"): grad_softmax_squared_error,
    ("linear", "squared_error"): grad_linear_squared_error,
}
OUTPUT_ALIASES = {"identity": "linear"}
LOSS_ALIASES = {"mean_squared_error": "squared_error", "mse": "squared_error", "ce": "cross_entropy"}


def canonical_output(name):
    key = OUTPUT_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in OUTPUTS:
        raise unknown_name("output", name, list(OUTPUTS) + list(OUTPUT_ALIASES))
    return key


def canonical_loss(name):
    key = LOSS_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in LOSSES:
        raise unknown_name("loss", name, list(LOSSES) + list(LOSS_ALIASES))
    return key


def get_output_layer(output, loss):
    """The OutputLayer for a valid (output, loss) pair; a ConfigError naming the valid pairs otherwise."""
    output, loss = canonical_output(output), canonical_loss(loss)
    if (output, loss) not in GRADIENTS:
        valid = ", ".join(f"{o} + {l}" for o, l in GRADIENTS)
        raise ConfigError(f"output {output!r} cannot be trained with loss {loss!r}; valid pairs: {valid}")
    return OutputLayer(output, loss, OUTPUTS[output], LOSSES[loss], GRADIENTS[(output, loss)])
