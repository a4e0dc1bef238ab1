"""IDX files, the format MNIST and Fashion-MNIST are distributed in.

Layout: two zero bytes, a type code byte, a dimension-count byte, one big-endian uint32 per
dimension, then the values in C order, big-endian. Files may be gzip-compressed; that is
detected from the gzip magic bytes, not from the file name.

A header is never trusted with memory: raw files are checked against their size before
anything is read, and gzip streams are decompressed in chunks and abandoned as soon as they
hold more than the header announced.
"""

import gzip
import math
import os
import struct
import zlib

import numpy as np

from ..errors import DataError
from ..fsutil import atomic_write

# type code -> big-endian dtype, as in the IDX specification
_CODES = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short
    0x0C: np.dtype(">i4"),  # int
    0x0D: np.dtype(">f4"),  # float
    0x0E: np.dtype(">f8"),  # double
}
_CODE_NAMES = {0x08: "ubyte", 0x09: "byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}
MAX_NDIM = 4  # the format allows 255; no real IDX file has more than 4 and a larger count means garbage
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _valid_codes():
    return ", ".join(f"0x{c:02x} {n}" for c, n in _CODE_NAMES.items())


def read_idx(path, dtype=None):
    """Read an IDX file, raw or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : numpy dtype, optional
        Convert the values to this dtype while reading, a chunk at a time, so that the file's own bytes are
        never held in full next to the converted array (a 60,000-image set then costs its float32 size only).

    Returns
    -------
    numpy.ndarray
        Shape as given by the header (1 to 4 dimensions), native byte order, dtype one of
        uint8, int8, int16, int32, float32, float64.

    Raises
    ------
    DataError
        One line naming the file and what is wrong with it.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as raw:
            is_gzip = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    return _read(name, f, size=None, out_dtype=dtype, isize=_gzip_isize(raw))
            if name.lower().endswith(".gz"):
                start = raw.read(4)
                raise DataError(f"{name}: named .gz but not gzip-compressed (starts with 0x{start.hex() or 'empty'})")
            return _read(name, raw, size=os.fstat(raw.fileno()).st_size, out_dtype=dtype)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, (EOFError, zlib.error, gzip.BadGzipFile)):
            what = "corrupt gzip stream"
        else:
            what = "cannot read"
        reason = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise DataError(f"{name}: {what} ({reason})") from e


def _read_exactly(f, n):
    # Read up to n bytes in chunks, so a lying header costs no more memory than the data present.
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _gzip_isize(raw):
    # The last four bytes of a gzip member: the uncompressed size modulo 2^32.
    end = raw.seek(0, os.SEEK_END)
    raw.seek(max(end - 4, 0))
    isize = int.from_bytes(raw.read(4), "little") if end >= 4 else None
    raw.seek(0)
    return isize


def _read(name, f, size, out_dtype=None, isize=None):
    """Parse the stream ``f``; ``size`` is the file size for raw files, None for gzip streams (``isize`` is then
    the size the gzip trailer announces)."""
    head = _read_exactly(f, 4)
    if len(head) < 4:
        raise DataError(f"{name}: not an IDX file ({len(head)} bytes; the header alone is at least 8)")
    magic = int.from_bytes(head, "big")
    if head[0] != 0 or head[1] != 0:
        raise DataError(
            f"{name}: not an IDX file (magic 0x{magic:08x}; expected 0x0000TTNN, "
            f"TT a type code and NN the number of dimensions)"
        )
    code, ndim = head[2], head[3]
    if code not in _CODES:
        raise DataError(f"{name}: unknown IDX type code 0x{code:02x} (magic 0x{magic:08x}; valid: {_valid_codes()})")
    if not 1 <= ndim <= MAX_NDIM:
        raise DataError(f"{name}: IDX header gives {ndim} dimensions (magic 0x{magic:08x}; allowed 1..{MAX_NDIM})")
    dim_bytes = _read_exactly(f, 4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise DataError(f"{name}: truncated IDX header ({4 + len(dim_bytes)} of {4 + 4 * ndim} bytes)")
    dims = struct.unpack(f">{ndim}I", dim_bytes)
    dtype = _CODES[code]
    expected = math.prod(dims) * dtype.itemsize
    shape = "x".join(map(str, dims))
    header = 4 + 4 * ndim
    # Convert while reading only when the size is known to be real: the file's size, or a gzip trailer that agrees
    # with the header; otherwise read the bytes (as much as is really there) and convert afterwards.
    if out_dtype is not None and expected < 2 ** 32 and (
            (size is not None and size - header == expected) or (size is None and isize == header + expected)):
        return _read_converted(name, f, dims, dtype, np.dtype(out_dtype), expected, shape, gzipped=size is None)
    if size is not None:
        present = size - 4 - 4 * ndim
        if present != expected:
            _size_error(name, shape, dtype, expected, present)
        buf = bytearray(expected)
        if f.readinto(buf) != expected:
            raise DataError(f"{name}: file shrank while being read")
    else:
        buf = _read_exactly(f, expected)
        if len(buf) < expected:
            _size_error(name, shape, dtype, expected, len(buf))
        extra = f.read(1)  # reaching the end also makes gzip verify its CRC and length
        if extra:
            _size_error(name, shape, dtype, expected, None)
    array = np.frombuffer(buf, dtype=dtype).reshape(dims)
    if out_dtype is not None:
        return array.astype(out_dtype)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _read_converted(name, f, dims, dtype, out_dtype, expected, shape, gzipped):
    try:
        out = np.empty(math.prod(dims), out_dtype)
    except MemoryError:
        raise DataError(f"{name}: {shape} values of {out_dtype} do not fit in memory") from None
    chunk = bytearray(_CHUNK - _CHUNK % dtype.itemsize)
    view = memoryview(chunk)
    done = 0
    while done < expected:
        want = min(len(chunk), expected - done)
        got = 0
        while got < want:
            n = f.readinto(view[got:want])
            if not n:
                _size_error(name, shape, dtype, expected, done + got)
            got += n
        start = done // dtype.itemsize
        out[start:start + want // dtype.itemsize] = np.frombuffer(chunk, dtype=dtype, count=want // dtype.itemsize)
        done += want
    if gzipped and f.read(1):  # reaching the end also makes gzip verify its CRC and length
        _size_error(name, shape, dtype, expected, None)
    return out.reshape(dims)


def _size_error(name, shape, dtype, expected, present):
    kind = "truncated" if present is not None and present < expected else "trailing bytes"
    have = "more" if present is None else f"{present}"
    raise DataError(
        f"{name}: {kind}: header says {shape} {dtype.newbyteorder('=').name} = {expected} data bytes, file has {have}"
    )


def _code_for(dtype):
    for code, d in _CODES.items():
        if d.kind == dtype.kind and d.itemsize == dtype.itemsize:
            return code
    return None


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    array : array_like
        1 to 4 dimensions; dtype uint8, int8, int16, int32, float32 or float64.
    compress : bool or None
        gzip the file; None means: if ``path`` ends with ``.gz``.
    """
    name = os.fspath(path)
    array = np.asarray(array)
    code = _code_for(array.dtype)
    if code is None:
        valid = ", ".join(d.newbyteorder("=").name for d in _CODES.values())
        raise DataError(f"{name}: cannot write dtype {array.dtype} as IDX (valid: {valid})")
    if not 1 <= array.ndim <= MAX_NDIM:
        raise DataError(f"{name}: cannot write a {array.ndim}-dimensional array as IDX (allowed 1..{MAX_NDIM})")
    if any(d >= 2**32 for d in array.shape):
        raise DataError(f"{name}: dimension {max(array.shape)} does not fit IDX's uint32")
    if compress is None:
        compress = name.lower().endswith(".gz")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = np.ascontiguousarray(array, dtype=_CODES[code])
    with atomic_write(name, "wb") as f:
        if compress:
            # mtime=0 and no stored name: the same array always gives the same bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
                g.write(header)
                g.write(data.reshape(-1).view(np.uint8))
        else:
            f.write(header)
            f.write(data.reshape(-1).view(np.uint8))
