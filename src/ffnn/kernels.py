"""ffnn's optional compiled kernels, and the switch that turns them on.

``_kernels.c`` is built at install time when a C compiler is available. It holds the optimizers' update rules
fused into one pass over the parameters each, the row gathers for mini-batches (of a float array, and of bytes
converted to floats for :class:`ffnn.arrays.ScaledBytes`), ``grad_h * g'(a)`` in one pass for the built-in
activations, and the count of correct predictions. Each does exactly what the NumPy code beside its use does, in
the same order and precision, so results are bit-identical with or without it (the tests check it); the NumPy code
is the reference and the fallback. ``FFNN_NO_KERNELS=1`` turns them off. For CuPy arrays (device 'cuda') the same
entry points dispatch to :mod:`ffnn.cuda`.

Large writes (parameter updates and batches of 256 KiB or more) use streaming stores while those are at least
twice as fast as ordinary ones, as happens when the lines were last read by BLAS on another core of a machine whose
cores sit far apart; the values written are the same either way. ``compiled.store_policy()`` counts the calls that
used each, and ``compiled.store_policy("ordinary" | "streaming" | "auto")`` fixes the choice or gives it back.
"""

import os

import numpy as np

from . import cuda

try:
    from . import _kernels as compiled
except ImportError:  # built without a C compiler: the NumPy code gives the same numbers, a little slower
    compiled = None

ENABLED = compiled is not None and os.environ.get("FFNN_NO_KERNELS", "0") in ("", "0")


def take_rows(X, rows, out):
    """``out[i] = X[rows[i]]``, as ``np.take(X, rows, axis=0, out=out)``.

    The compiled gather prefetches the next rows while it copies one, which makes a mini-batch from a data set
    larger than the caches about 30% quicker to gather; it applies to C-contiguous NumPy arrays of one dtype with
    int64 row indices.
    """
    if (ENABLED and type(X) is np.ndarray and type(out) is np.ndarray and X.ndim == 2 and X.dtype == out.dtype
            and X.flags.c_contiguous and out.flags.c_contiguous and rows.dtype == np.int64
            and compiled.take_rows(X, np.ascontiguousarray(rows), out) is not NotImplemented):
        return out
    return np.take(X, rows, axis=0, out=out)


def forward(kind, a, b, h):
    """``a += b`` (b added to each row), then ``h = g(a)`` for the built-in g numbered ``kind`` (as in backward), in
    one kernel on a GPU; False elsewhere, and the caller then takes the two NumPy steps. (On the CPU the two steps
    cost no more than one compiled pass: each is one quick sweep over a batch that sits in the cache.)"""
    return kind is not None and type(a) is not np.ndarray and cuda.is_array(a) and cuda.forward(kind, a, b, h)


def backward(kind, a, h, grad_h, out):
    """``out = grad_h * g'(a)`` in one compiled pass for the built-in g' numbered ``kind`` (0 tanh, 1 logistic,
    2 relu, 3 identity); False where that does not apply (``kind`` None, or arrays the kernel does not take), and
    the caller then computes g'(a) and the product with NumPy, which gives the same numbers."""
    if type(out) is not np.ndarray:
        return kind is not None and cuda.is_array(out) and cuda.backward(kind, a, h, grad_h, out)
    if not (ENABLED and kind is not None and type(a) is type(h) is type(grad_h) is np.ndarray
            and a.shape == h.shape == grad_h.shape == out.shape):
        return False
    try:  # the kernel takes C-contiguous, writable float32 or float64 arrays of one dtype, and says when it cannot
        compiled.backward(kind, a, h, grad_h, out)
    except (TypeError, ValueError, BufferError):
        return False
    return True


def weight_gradients(h_T, grad_a, grad_WT, grad_b):
    """``grad_WT = h_T @ grad_a`` and ``grad_b`` = grad_a's rows summed, in one product on a GPU (cuBLASLt's
    bias-gradient epilogue); False elsewhere, and the caller then takes the two products."""
    return type(grad_WT) is not np.ndarray and cuda.is_array(grad_WT) and cuda.gemm_column_sums(h_T, grad_a,
                                                                                                grad_WT, grad_b)


def count_correct(y_hat, labels):
    """How many rows of ``y_hat`` have their largest value at their label: ``(y_hat.argmax(axis=1) == labels).sum()``
    in one compiled pass where it applies (NumPy arrays, int64 labels), with NumPy's argmax (first maximum, first
    NaN)."""
    if type(y_hat) is not np.ndarray and cuda.is_array(y_hat):
        return cuda.count_correct(y_hat, labels)
    if (ENABLED and type(y_hat) is np.ndarray and type(labels) is np.ndarray and y_hat.ndim == 2
            and y_hat.dtype in (np.float32, np.float64) and y_hat.flags.c_contiguous and labels.dtype == np.int64
            and labels.ndim == 1 and labels.flags.c_contiguous and y_hat.shape[1] > 0):
        return compiled.count_correct(y_hat, labels)
    return int((y_hat.argmax(axis=1) == labels).sum())
