"""Input matrices held compactly and taking rows from them; and how the vectors an update walks are laid out.

Image sets such as Fashion-MNIST arrive as bytes, a quarter of their float32 size. A :class:`ScaledBytes` keeps them
that way and turns rows into floats only as they are used: the training loop gathers each mini-batch straight
into floats, and evaluation converts one chunk at a time. The conversion is the same two float operations per
element as scaling the converted array in place, ``(x - offset) / scale`` in the float type, so every number a
network sees is identical to converting the whole set first.
"""

import itertools

import numpy as np

from . import cuda, kernels
from .errors import DataError


class ScaledBytes:
    """A float matrix stored as bytes: row i is ``(raw[i] - offset) / scale`` in ``dtype``.

    Parameters
    ----------
    raw : uint8 array, shape (N, n)
    offset, scale : float
        One offset and one (nonzero) scale for every feature.
    dtype : str or numpy dtype
        The float type the rows stand for: 'float32' or 'float64'. Rows written into an ``out`` array take its
        float type instead.
    """

    ndim = 2

    def __init__(self, raw, offset, scale, dtype="float32"):
        raw = np.ascontiguousarray(raw)
        if raw.dtype != np.uint8 or raw.ndim != 2:
            raise DataError(f"ScaledBytes holds a 2-D uint8 array; got {raw.ndim}-D {raw.dtype}")
        if not (np.isfinite(offset) and np.isfinite(scale) and scale != 0):
            raise DataError(f"ScaledBytes needs a finite offset and a finite nonzero scale; got {offset}, {scale}")
        self.raw, self.offset, self.scale, self.dtype = raw, float(offset), float(scale), np.dtype(dtype)
        self._raw_rows = {}  # uint8 workspaces of the NumPy path, one per row count

    @property
    def shape(self):
        return self.raw.shape

    def __len__(self):
        return self.raw.shape[0]

    def __repr__(self):
        return f"ScaledBytes({self.shape[0]}x{self.shape[1]} bytes, offset={self.offset}, scale={self.scale}, " \
               f"{self.dtype.name})"

    def take(self, rows, out):
        """``out[i] = (raw[rows[i]] - offset) / scale``, in ``out``'s float type; returns ``out``."""
        rows = np.asarray(rows)
        if (kernels.ENABLED and type(out) is np.ndarray and out.flags.c_contiguous and out.flags.writeable
                and out.dtype in (np.float32, np.float64) and rows.dtype == np.int64
                and kernels.compiled.take_scaled_rows(self.raw, np.ascontiguousarray(rows), out, self.offset,
                                                      self.scale) is not NotImplemented):
            return out
        n = rows.shape[0]
        if n not in self._raw_rows:
            self._raw_rows[n] = np.empty((n, self.raw.shape[1]), np.uint8)
        return self._convert(np.take(self.raw, rows, axis=0, out=self._raw_rows[n]), out)

    def block(self, start, stop, out):
        """Rows ``start:stop`` as floats, written into ``out``; returns ``out``."""
        if kernels.ENABLED:  # one compiled pass instead of three NumPy ones
            return self.take(np.arange(start, stop), out)
        return self._convert(self.raw[start:stop], out)

    def _convert(self, raw_rows, out):
        np.copyto(out, raw_rows)  # every byte is exact in float32 and float64
        out -= out.dtype.type(self.offset)
        out /= out.dtype.type(self.scale)
        return out

    def to_array(self, dtype=None):
        """The whole matrix as floats (``dtype``, by default the one this stands for)."""
        return self.block(0, len(self), np.empty(self.shape, dtype or self.dtype))

    def __array__(self, dtype=None, copy=None):
        return self.to_array(dtype)


def take_rows(X, rows, out):
    """``out[i] = X[rows[i]]`` for a NumPy or CuPy array or a :class:`ScaledBytes` (its rows converted to floats)."""
    if isinstance(X, ScaledBytes):
        return X.take(rows, out)
    if type(X) is not np.ndarray and cuda.is_array(X):
        return cuda.take_rows(X, rows, out)
    return kernels.take_rows(X, rows, out)


def row_block(X, start, stop, out):
    """Rows ``start:stop`` of X: a view of an array, or a ScaledBytes' rows converted into the first rows of
    ``out``."""
    if isinstance(X, ScaledBytes):
        return X.block(start, stop, out[:stop - start])
    return X[start:stop]


# Arrays that are updated element by element together, the parameters, their gradients and an optimizer's moments,
# would all start at the same offset within their 4 KiB pages (large allocations are page-aligned). A load from one
# of them then looks to the CPU as if it might depend on a store to another at the same page offset (4K aliasing)
# and waits: Adam's compiled update on 118,282 parameters takes 40 us so, and 34 us with each array starting at a
# different offset. Successive arrays take successive offsets, 9 cache lines apart.
_PAGE = 4096
_OFFSETS = itertools.cycle(range(0, _PAGE, 9 * 64))


def staggered_zeros(n, dtype):
    """A zeroed 1-D NumPy array of ``n`` elements that starts at the next of several offsets within a page."""
    dtype = np.dtype(dtype)
    offset = next(_OFFSETS)
    raw = np.zeros(n * dtype.itemsize + _PAGE + offset, np.uint8)
    start = -raw.ctypes.data % _PAGE + offset
    return raw[start:start + n * dtype.itemsize].view(dtype)


def staggered_zeros_like(like):
    """``np.zeros_like(like)``, from :func:`staggered_zeros` for a 1-D NumPy array."""
    if type(like) is np.ndarray and like.ndim == 1:
        return staggered_zeros(like.shape[0], like.dtype)
    return np.zeros_like(like)
