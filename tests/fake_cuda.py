"""A GPU stood in for by NumPy, to run ffnn's device code paths without one.

``install(monkeypatch)`` makes ``ffnn.cuda`` believe CuPy is loaded: its arrays are :class:`DeviceArray` (a NumPy
array subclass), its kernels are the NumPy transcriptions in ``KERNELS`` of the CUDA C in ``ffnn.cuda.SOURCE``, and
its cuBLAS and cuBLASLt calls go to :func:`gemm` and :class:`_Lt`, which read the operands through the pointers and
leading dimensions cuBLAS would. Stream capture is emulated strictly: while a stream records, every operation on a
DeviceArray is recorded instead of run (and replayed by the graph), and anything a real capture cannot hold raises
CaptureError: allocating device memory, reading a value back to the host, copying from the host, or fancy indexing.
"""

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
import types

import numpy as np

from ffnn import cuda


class CaptureError(RuntimeError):
    """An operation that a CUDA graph capture does not allow."""


RECORDING = None  # the list of operations of the capture in progress


def _capturing(what):
    if RECORDING is not None:
        raise CaptureError(f"{what} while a stream is being captured")


def _base(x):
    return x.view(np.ndarray) if isinstance(x, DeviceArray) else x


def _wrap(x):
    return x.view(DeviceArray) if type(x) is np.ndarray else x


def _device_only(values):
    # CuPy refuses to mix its arrays with NumPy arrays in one operation.
    for x in values:
        if type(x) is np.ndarray and x.ndim > 0:
            raise TypeError("a NumPy array was given where a device array is needed")


def _run_or_record(op):
    if RECORDING is not None:
        RECORDING.append(op)
    else:
        op()


class DeviceArray(np.ndarray):
    """A NumPy array standing for a CuPy one."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _device_only(inputs + (out or ()))
        args = [_base(x) for x in inputs]
        if out is None:
            _capturing(f"allocating the result of {ufunc.__name__}")
            return _wrap(getattr(ufunc, method)(*args, **kwargs))
        outs = tuple(_base(o) for o in out)
        _run_or_record(lambda: getattr(ufunc, method)(*args, out=outs, **kwargs))
        return out[0] if len(out) == 1 else out

    def __array_function__(self, func, types_, args, kwargs):
        _device_only(list(args) + list(kwargs.values()))
        args = [_base(a) for a in args]
        kwargs = {k: _base(v) for k, v in kwargs.items()}
        if func is np.copyto or "out" in kwargs:
            _run_or_record(lambda: func(*args, **kwargs))
            return None if func is np.copyto else _wrap(kwargs["out"])
        _capturing(f"allocating the result of {func.__name__}")
        result = func(*args, **kwargs)
        return _wrap(result) if isinstance(result, np.ndarray) else result

    def __getitem__(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, (np.ndarray, list)) for p in parts):
            _capturing("fancy indexing")
        result = super().__getitem__(index)
        if not isinstance(result, np.ndarray):
            _capturing("reading a value")
        return result

    def __setitem__(self, index, value):
        base, value = _base(self), _base(value)
        _run_or_record(lambda: base.__setitem__(index, value))

    def fill(self, value):
        base = _base(self)
        _run_or_record(lambda: base.fill(value))

    def astype(self, dtype, copy=True, **kwargs):
        if copy or np.dtype(dtype) != self.dtype:
            _capturing("converting an array")
        return _wrap(_base(self).astype(dtype, copy=copy, **kwargs))

    def copy(self, order="C"):
        _capturing("copying an array")
        return _wrap(_base(self).copy(order))

    def set(self, host):
        _capturing("copying from the host")
        np.copyto(_base(self), host)

    def get(self):
        _capturing("copying to the host")
        return _base(self).copy()

    def __float__(self):
        _capturing("reading a value")
        return float(_base(self))

    def __bool__(self):
        _capturing("reading a value")
        return bool(_base(self))

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _allocating(fn):
    def allocate(*args, **kwargs):
        _capturing(f"allocating with {fn.__name__}")
        args = [_base(a) for a in args]
        return _wrap(np.asarray(fn(*args, **kwargs)))
    return allocate


class Stream:
    def __init__(self, non_blocking=False):
        self.ptr = id(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        global RECORDING
        assert RECORDING is None
        RECORDING = []

    def end_capture(self):
        global RECORDING
        ops, RECORDING = RECORDING, None
        return Graph(ops)

    def synchronize(self):
        pass


class Graph:
    launches = 0

    def __init__(self, ops):
        self.ops = ops

    def launch(self, stream=None):
        Graph.launches += 1
        for op in self.ops:
            op()


def _module():
    device = types.SimpleNamespace(id=0, synchronize=lambda: None)
    def asarray(x, dtype=None, **kwargs):  # as CuPy's: a device array of that dtype is returned as it is
        if isinstance(x, DeviceArray) and (dtype is None or np.dtype(dtype) == x.dtype) and not kwargs:
            return x
        return _allocating(np.asarray)(x, dtype, **kwargs)

    def ascontiguousarray(x, dtype=None):  # likewise, for a C-contiguous one; as CuPy's, for device arrays only
        if not isinstance(x, DeviceArray):
            raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(x).__name__})")
        if (dtype is None or np.dtype(dtype) == x.dtype) and x.flags.c_contiguous:
            return x
        return _allocating(np.ascontiguousarray)(x, dtype)

    names = {name: _allocating(getattr(np, name)) for name in
             ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "arange",
              "matmul")}
    return types.SimpleNamespace(
        asarray=asarray, ascontiguousarray=ascontiguousarray, ndarray=DeviceArray, take=lambda X, rows, axis=0, out=None: _take(X, rows, out),
        isfinite=lambda x: _wrap(np.isfinite(_base(x))),
        __version__="(emulated)",
        cuda=types.SimpleNamespace(Stream=Stream, Device=lambda *a: device,
                                   runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"Emulated"}),
                                   get_current_stream=lambda: types.SimpleNamespace(
                                       ptr=1, is_capturing=lambda: RECORDING is not None),
                                   device=types.SimpleNamespace(get_cublas_handle=lambda: None)),
        **names)


def _take(X, rows, out):
    _capturing("take")
    np.take(_base(X), _base(rows), axis=0, out=_base(out))
    return out


# -- the kernels of ffnn.cuda.SOURCE, in NumPy --------------------------------------------------------------------

def _batch_rows(X, width, x, Y, y_words, y, perm, offset, count):
    rows = perm[int(offset[0]):int(offset[0]) + count]
    x.reshape(-1)[:count * width] = X.reshape(-1, width)[rows].reshape(-1)
    y.reshape(-1).view(np.uint32)[:count * y_words] = Y.reshape(-1).view(np.uint32).reshape(-1, y_words)[rows].ravel()


def _softmax(a, b, bias, out, rows, k):
    if bias:
        a += b.reshape(-1)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    out[...] = e / e.sum(axis=1, keepdims=True)


def _ce_grad(y_hat, labels, out, n, k, scale):
    out[...] = y_hat
    out[np.arange(n), labels] -= 1
    out *= scale


def _soft_grad(y_hat, y, out, n, scale):
    np.multiply(y_hat - y, scale, out=out)


def _lse(a):
    a = a.astype(np.float64)
    top = a.max(axis=1, keepdims=True)
    return np.log(np.exp(a - top).sum(axis=1)) + top[:, 0]


def _batch_totals(kind, a, y_hat, labels, targets, use_labels, rows, k, loss, correct, count, offset, advance):
    targets = None if use_labels else targets
    if kind == 0:
        if use_labels:
            loss[0] += (_lse(a) - a[np.arange(rows), labels].astype(np.float64)).sum()
        else:
            loss[0] += (targets.astype(np.float64) * (_lse(a)[:, None] - a.astype(np.float64))).sum()
    elif kind == 1:
        target = np.eye(k)[labels] if use_labels else targets.astype(np.float64)
        loss[0] += ((y_hat.astype(np.float64) - target) ** 2).sum()
    if count:
        correct[0] += int((y_hat.argmax(axis=1) == (labels if use_labels else targets.argmax(axis=1))).sum())
    if advance:
        offset[0] += advance


def _forward(kind, n, width, b, a, h):
    a += b.reshape(-1)
    with np.errstate(over="ignore", under="ignore"):
        one = a.dtype.type(1)
        h[...] = [np.tanh(a), one / (one + np.exp(-a)), np.maximum(a, 0), a][int(kind)]


def _backward(kind, n, a, h, gh, out):
    one = a.dtype.type(1)
    d = [one - h * h, (one - h) * h, (a > 0).astype(a.dtype), np.ones_like(a)][int(kind)]
    np.multiply(d, gh, out=out)


def _sgd(n, theta, grad, eta):
    theta -= grad * theta.dtype.type(eta)


def _momentum(n, theta, grad, u, beta, eta):
    T = theta.dtype.type
    u[...] = u * T(beta) + grad * T(eta)
    theta -= u


def _nag(n, theta, grad, u, beta, eta):
    T = theta.dtype.type
    step = grad * T(eta)
    u[...] = u * T(beta) + step
    theta[...] = (theta - step) - u * T(beta)


def _rmsprop(n, theta, grad, v, beta, omb, eps, eta):
    T = theta.dtype.type
    v[...] = v * T(beta) + (grad * grad) * T(omb)
    theta[...] = theta - (grad / (np.sqrt(v) + T(eps))) * T(eta)


def _adam(n, theta, grad, m, v, b1, omb1, b2, omb2, eps, lr, t, nesterov):
    T = theta.dtype.type
    c1, c2 = 1.0 - b1 ** float(t[0]), 1.0 - b2 ** float(t[0])
    m[...] = m * T(b1) + grad * T(omb1)
    v[...] = v * T(b2) + (grad * grad) * T(omb2)
    den = np.sqrt(v) * T(1.0 / np.sqrt(c2)) + T(eps)
    if nesterov:
        theta[...] = theta - ((m * T(b1 / c1) + grad * T(omb1 / c1)) / den) * T(lr)
    else:
        theta[...] = theta - (m / den) * T(lr / c1)


def _add_to(p, v):
    p[0] += v


# -- or the CUDA C itself, built for this CPU -----------------------------------------------------------------------
# A prelude gives the source what CUDA would: the thread indices (one thread walks an elementwise kernel's whole
# range; a row-wise kernel runs once per row), and atomicAdd as a plain add. Built with -ffp-contract=off, as the
# GPU build uses --fmad=false, its float arithmetic is the GPU's, but for exp and log.

PRELUDE = r"""
#include <math.h>
struct Dim { long long x; };
static Dim blockIdx = {0}, threadIdx = {0}, gridDim = {1}, blockDim = {1};
extern "C" void set_thread(long long thread, long long threads) { threadIdx.x = thread; blockDim.x = threads; }
#define __global__
#define __device__ static inline
#define __shared__ static
#define __syncthreads()
static inline double atomicAdd(double *p, double v) { double old = *p; *p = old + v; return old; }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{
    unsigned long long old = *p; *p = old + v; return old;
}
"""
ROWWISE = {"softmax", "batch_totals", "softmax_lanes", "batch_totals_lanes"}
_CTYPES = {np.int64: ctypes.c_longlong, np.int32: ctypes.c_int, np.float64: ctypes.c_double,
           np.float32: ctypes.c_float}


@functools.cache
def host_library():
    """The kernels of ffnn.cuda.SOURCE compiled for this CPU, or None without a C++ compiler."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        return None
    folder = tempfile.mkdtemp(prefix="ffnn-cuda-host-")
    source, library = os.path.join(folder, "kernels.cpp"), os.path.join(folder, "kernels.so")
    with open(source, "w") as f:
        f.write(PRELUDE + cuda.SOURCE)
    subprocess.run([compiler, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", library, source], check=True,
                   capture_output=True)
    return ctypes.CDLL(library)


class HostKernel:
    """One kernel of the host build, launched as ``n`` threads would run it."""

    def __init__(self, name, dtype):
        self.__name__ = "_" + name
        self.rowwise = name in ROWWISE
        self.fn = getattr(host_library(), name if dtype is None else f"{name}_{cuda._SUFFIX[np.dtype(dtype)]}")

    def run(self, n, args, threads=None):
        """``threads``: how many threads a row-wise kernel gets, one per row unless fewer are given (as when the
        grid is capped), each then looping over every threads-th row."""
        cargs = [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else _CTYPES[type(a)](a) for a in args]
        count = (threads or n) if self.rowwise else 1
        for thread in range(count):
            host_library().set_thread(thread, count)
            self.fn(*cargs)


class Transcribed:
    """A kernel's NumPy transcription, launched like a HostKernel."""

    def __init__(self, fn):
        self.fn, self.__name__ = fn, fn.__name__

    def run(self, n, args):
        self.fn(*args)


def _softmax_lanes(a, b, bias, out, rows, k, lanes):  # a row over a warp's lanes: the same row's softmax
    _softmax(a, b, bias, out, rows, k)


def _batch_totals_lanes(*args):  # likewise, the same totals (the last argument is the lanes a row takes)
    _batch_totals(*args[:-1])


KERNELS = {"batch_rows": _batch_rows, "softmax": _softmax, "softmax_lanes": _softmax_lanes, "ce_grad": _ce_grad,
           "soft_grad": _soft_grad, "batch_totals": _batch_totals, "batch_totals_lanes": _batch_totals_lanes,
           "forward": _forward, "backward": _backward, "sgd": _sgd, "momentum": _momentum, "nag": _nag,
           "rmsprop": _rmsprop, "adam": _adam, "add_to": _add_to}
LAUNCHED = []  # (kernel name, dtype) of every launch, recorded or run


KERNEL_SOURCE = "numpy"  # or "host": which kernels install() puts in place


def _kernel(name, dtype=None):
    LAUNCHED.append((name, None if dtype is None else np.dtype(dtype).name))
    return HostKernel(name, dtype) if KERNEL_SOURCE == "host" else Transcribed(KERNELS[name])


def _launch(kernel, n, args):
    _device_only(args)  # a kernel cannot read host memory
    args = tuple(_base(a) for a in args)
    for a in args:  # the kernels index their arrays as C-contiguous
        if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
            raise ValueError(f"{kernel.__name__[1:]} was given an array that is not C-contiguous")
    _run_or_record(lambda: kernel.run(n, args))


# -- cuBLAS -------------------------------------------------------------------------------------------------------

def _column_major(ptr, rows, cols, ld, dtype):
    # The (rows, cols) column-major matrix at ``ptr`` with leading dimension ``ld``, as cuBLAS reads it.
    itemsize = np.dtype(dtype).itemsize
    size = ld * (cols - 1) + rows
    raw = (ctypes.c_char * (size * itemsize)).from_address(ptr)
    flat = np.frombuffer(raw, dtype=dtype, count=size)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (itemsize, ld * itemsize))


def _operands(op_a, op_b, m, n, k, A, lda, B, ldb, dtype):
    # op(A) (m, k) and op(B) (k, n), as cuBLAS reads them
    a = _column_major(A, *((m, k) if op_a == 0 else (k, m)), lda, dtype)
    b = _column_major(B, *((k, n) if op_b == 0 else (n, k)), ldb, dtype)
    return (a if op_a == 0 else a.T), (b if op_b == 0 else b.T)


def gemm(dtype):
    def call(handle, op_a, op_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        def run():
            a, b = _operands(op_a, op_b, m, n, k, A, lda, B, ldb, dtype)
            _column_major(C, m, n, ldc, dtype)[...] = a @ b
        _run_or_record(run)
        return 0
    return call


class _Lt:
    """cuBLASLt's product with the BGRADA epilogue (D = op(A) op(B), and op(A)'s rows summed into the bias), with
    plans for float32 alone, as on a GPU whose cuBLASLt has no float64 algorithm with that epilogue. Its heuristic,
    like the real one, cannot be asked during a capture."""

    def __init__(self):
        self.plans = {}

    def plan(self, dtype, ops, shape, lds, alignments, bias):
        _capturing("asking cuBLASLt's heuristic")
        return (np.dtype(dtype), ops, shape, lds) if dtype == np.float32 else None

    def run(self, plan, A, B, D, bias, stream_ptr):
        dtype, (op_a, op_b), (m, n, k), (lda, ldb, ldc) = plan
        def run():
            a, b = _operands(op_a, op_b, m, n, k, A, lda, B, ldb, dtype)
            _column_major(D, m, n, ldc, dtype)[...] = a @ b
            _column_major(bias, m, 1, m, dtype)[:, 0] = a.sum(axis=1)
        _run_or_record(run)


class _Blas:
    handle = None

    def __init__(self):
        self.scalars = {np.dtype(t): (gemm(t), None, None) for t in (np.float32, np.float64)}

    def bind(self, stream_ptr):
        pass


def install(monkeypatch, kernels="numpy"):
    """Stand NumPy in for CuPy and a GPU in ``ffnn.cuda`` for one test, with the kernels' NumPy transcriptions
    (``kernels="numpy"``) or their CUDA C built for this CPU (``"host"``)."""
    global RECORDING, KERNEL_SOURCE
    RECORDING, KERNEL_SOURCE = None, kernels
    LAUNCHED.clear()
    Graph.launches = 0
    monkeypatch.setattr(cuda, "cupy", _module())
    monkeypatch.setattr(cuda, "_kernel", _kernel)
    monkeypatch.setattr(cuda, "_launch", _launch)
    blas, lt = _Blas(), _Lt()
    monkeypatch.setattr(cuda, "_blas", lambda device_id: blas)
    monkeypatch.setattr(cuda, "_lt", lambda device_id: lt)
