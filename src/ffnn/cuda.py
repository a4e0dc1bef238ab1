"""ffnn on an NVIDIA GPU: CuPy arrays, a few fused CUDA kernels, cuBLAS products that a CUDA graph can capture.

The math is the same code as on the CPU (:mod:`ffnn.network`, :mod:`ffnn.outputs`, :mod:`ffnn.optimizers`): it
calls ufuncs with ``out=``, which dispatch to CuPy, and the few functions that :mod:`ffnn.kernels` also fuses on the
CPU, which dispatch here for CuPy arrays. The kernels below do the same float operations in the same order as the
NumPy code beside their use (compiled with ``--fmad=false``, so no multiply-add is contracted), except the row-wise
softmax and the losses, which each row computes from its own maximum; a row of up to 32 values (a classifier's
outputs) is spread over a warp's lanes, one value a lane, and its maximum and sum come from shuffles.

The training loop (:class:`ffnn.training.Trainer`) captures one whole training step, gather, forward, loss,
backward and update, as a CUDA graph, and STEPS_PER_GRAPH steps as another, and replays them; each step is about
two dozen kernels and cuBLAS calls that then cost one launch between them. For that every step reads what changes
between steps from the device: the shuffled row order, the batch offset, and the optimizer's step count for Adam's
bias correction. CuPy does not let cuBLAS be called while a stream is being captured, so the products call
``cublasSgemm_v2`` / ``cublasDgemm_v2`` directly, through a handle of ffnn's own with a workspace of its own, bound
to the stream before the capture. A layer's weight gradient and its bias gradient are one cuBLASLt product
(``cublasLtMatmul`` with the BGRADA epilogue, which sums grad_a's rows), planned by the eager steps before a
capture.

Nothing here imports CuPy until device 'cuda' is asked for.
"""

import ctypes
import functools
import math
import os

import numpy as np

from .errors import ConfigError

cupy = None  # the module, once device 'cuda' has been asked for and works

GRAPHS = not os.environ.get("FFNN_NO_GRAPHS")  # FFNN_NO_GRAPHS=1 runs every training step eagerly
STEPS_PER_GRAPH = 16  # training steps captured in one graph; a single-step graph takes the rest of an epoch


def array_module():
    """CuPy, after checking that it is installed and sees a GPU; a one-line ConfigError otherwise."""
    global cupy
    if cupy is not None:
        return cupy
    try:
        import cupy as module
    except ImportError:
        raise ConfigError("device 'cuda' needs CuPy and an NVIDIA GPU: pip install 'ffnn[gpu]' on a machine with "
                          "CUDA, or use device 'cpu'") from None
    try:
        count = module.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, or one too old for this CuPy
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"device 'cuda' is not usable here ({reason}); use device 'cpu'") from None
    if count < 1:
        raise ConfigError("device 'cuda' found no GPU; use device 'cpu'")
    cupy = module
    return cupy


def describe():
    """One line on the GPU in use, for run logs."""
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return f"GPU {name} through CuPy {cupy.__version__}, " + (
        "steps replayed as CUDA graphs" if GRAPHS else "every step eager (FFNN_NO_GRAPHS)")


def is_array(x):
    """Whether ``x`` is a CuPy array (False whenever CuPy has not been loaded by ffnn)."""
    return cupy is not None and isinstance(x, cupy.ndarray)


# -- kernels -------------------------------------------------------------------------------------------------------
# Grid-stride loops: over the elements in the elementwise kernels, over the rows (of a few outputs) in the row-wise
# ones, one thread per row while the grid has that many.

SOURCE = r"""
#define ELEMENTS(n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                         i += (long long)gridDim.x * blockDim.x)
#define ROWS(rows) for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < (rows); \
                        r += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void add_to(long long *p, long long v)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) p[0] += v;
}

/* A mini-batch in one launch: out rows i of x and y are rows perm[offset + i] of X and Y. y's rows are copied as
   32-bit words (labels are int64, targets float32 or float64), so one kernel serves every kind of y. */
#define BATCH_ROWS(T, S)                                                                                         \
extern "C" __global__ void batch_rows_##S(const T *__restrict__ X, long long width, T *__restrict__ x,           \
                                          const unsigned *__restrict__ Y, long long y_words,                    \
                                          unsigned *__restrict__ y, const long long *__restrict__ perm,         \
                                          const long long *__restrict__ offset, long long count)                \
{                                                                                                                \
    const long long start = offset[0], nx = count * width;                                                      \
    ELEMENTS(nx + count * y_words) {                                                                             \
        if (i < nx) {                                                                                            \
            long long r = i / width;                                                                             \
            x[i] = X[perm[start + r] * width + (i - r * width)];                                                 \
        } else {                                                                                                 \
            long long j = i - nx, r = j / y_words;                                                               \
            y[j] = Y[perm[start + r] * y_words + (j - r * y_words)];                                             \
        }                                                                                                        \
    }                                                                                                            \
}
BATCH_ROWS(float, f32)
BATCH_ROWS(double, f64)

/* The row-wise kernels: one thread a row here (rows of more than 32 values, and the host build), a row over a
   warp's lanes below. */
__device__ float exp_(float x) { return expf(x); }
__device__ double exp_(double x) { return exp(x); }

/* y_hat = softmax(a) of a row: exp(a - max) / sum; with bias set, a += b first (the output layer's bias, written
   back: a_L is kept for the loss) */
template <typename T>
__device__ void softmax_row(T *x, const T *b, int bias, T *y, long long k)
{
    if (bias)
        for (long long j = 0; j < k; j++) x[j] = x[j] + b[j];
    T top = x[0];
    for (long long j = 1; j < k; j++) top = x[j] > top ? x[j] : top;
    T sum = 0;
    for (long long j = 0; j < k; j++) sum += exp_(x[j] - top);
    for (long long j = 0; j < k; j++) y[j] = exp_(x[j] - top) / sum;
}

/* A batch's totals, added in double: the loss (kind 0 cross-entropy from a_L by log-sum-exp, -log y_hat[label] or
   sum_j y_j (lse - a_j); kind 1 squared error sum_j (y_hat_j - y_j)^2 against targets or e(l); kind 2 none), the
   rows whose largest output is at the label or at the largest target (the first maximum, a NaN counting as one,
   as NumPy's argmax), and, from row 0, the batch offset of the training loop. */
template <typename T>
__device__ double lse_row(const T *x, long long k)
{
    double top = x[0];
    for (long long j = 1; j < k; j++) top = x[j] > top ? (double)x[j] : top;
    double s = 0;
    for (long long j = 0; j < k; j++) s += exp((double)x[j] - top);
    return log(s) + top;
}

template <typename T>
__device__ long long argmax_row(const T *x, long long k)
{
    long long best = 0;
    for (long long j = 1; j < k && x[best] == x[best]; j++)
        if (x[j] != x[j] || x[j] > x[best]) best = j;
    return best;
}

template <typename T>
__device__ void totals_row(int kind, const T *x, const T *p, long long label, const T *t, int use_labels,
                           long long k, int count, double *loss, unsigned long long *correct)
{
    double s = 0;
    if (kind == 0) {
        double lse = lse_row(x, k);
        if (use_labels)
            s = lse - (double)x[label];
        else
            for (long long j = 0; j < k; j++) s += (double)t[j] * (lse - (double)x[j]);
    } else if (kind == 1) {
        for (long long j = 0; j < k; j++) {
            double d = (double)p[j] - (use_labels ? (double)(label == j) : (double)t[j]);
            s += d * d;
        }
    }
    *loss += s;
    if (count && argmax_row(p, k) == (use_labels ? label : argmax_row(t, k))) *correct += 1;
}

/* A thread's totals into the batch's: on a GPU, summed over the warp first, one atomic add a warp */
__device__ void add_to_totals(double *loss, double s, unsigned long long *correct, unsigned long long c)
{
#ifdef __CUDA_ARCH__
    for (int offset = 16; offset > 0; offset /= 2) {
        s += __shfl_down_sync(0xffffffffu, s, offset);
        c += __shfl_down_sync(0xffffffffu, c, offset);
    }
    if (threadIdx.x % 32 != 0) return;
#endif
    if (loss) atomicAdd(loss, s);
    if (correct) atomicAdd(correct, c);
}

/* Rows of k <= 32 values (a classifier's outputs) spread over the lanes of a warp, one value a lane: W lanes a row
   (W the power of two >= k), their maximum and sum found by shuffles within those W, all in flight at once where a
   thread of its own would loop over its row. Every lane of a warp makes each pass of the loop (a shuffle needs
   them all), those past the last row too. Lanes past a row's k values stand in its first value and add nothing.
   The host build of this source (the tests') has no warps: there the first lane of a row does the row alone. */
#define FULL_WARP 0xffffffffu
#define LANES(rows, W) for (long long slot = blockIdx.x * (long long)blockDim.x + threadIdx.x;                     \
                            slot - threadIdx.x % 32 < (rows) * (W); slot += (long long)gridDim.x * blockDim.x)

template <typename T>
__device__ void softmax_lanes(T *a, const T *b, int bias, T *out, long long rows, long long k, int W)
{
    LANES(rows, W) {
        const long long r = slot / W;
        const int j = (int)(slot % W);
        const bool here = r < rows && j < k;
#ifdef __CUDA_ARCH__
        const long long at = r * k + j;
        T x = here ? (bias ? a[at] + b[j] : a[at]) : (T)0;
        if (here && bias) a[at] = x;
        const T first = __shfl_sync(FULL_WARP, x, 0, W);
        x = here ? x : first;  /* a lane past the row's values stands in its first value */
        T top = x;
        for (int o = W / 2; o > 0; o /= 2) {
            const T other = __shfl_xor_sync(FULL_WARP, top, o, W);
            top = other > top ? other : top;
        }
        const T e = here ? exp_(x - top) : (T)0;
        T sum = e;
        for (int o = W / 2; o > 0; o /= 2) sum += __shfl_xor_sync(FULL_WARP, sum, o, W);
        if (here) out[at] = e / sum;
#else
        if (here && j == 0) softmax_row(a + r * k, b, bias, out + r * k, k);
#endif
    }
}

#ifdef __CUDA_ARCH__
/* Whether (v, j) comes before (top, best) in NumPy's argmax order: a NaN first, then the larger value, a tie to
   the lower index; an index past the row (a lane standing in) never. */
template <typename T>
__device__ bool before(T v, int j, T top, int best, long long k)
{
    if (j >= k) return false;
    if (best >= k) return true;
    const bool v_nan = v != v, top_nan = top != top;
    if (v_nan || top_nan) return v_nan && (!top_nan || j < best);
    return v > top || (v == top && j < best);
}

template <typename T>
__device__ int argmax_lanes(T v, int j, long long k, int W)
{
    T top = v;
    int best = j;
    for (int o = W / 2; o > 0; o /= 2) {
        const T other = __shfl_xor_sync(FULL_WARP, top, o, W);
        const int other_j = __shfl_xor_sync(FULL_WARP, best, o, W);
        if (before(other, other_j, top, best, k)) { top = other; best = other_j; }
    }
    return best;
}
#endif

template <typename T>
__device__ void totals_lanes(int kind, const T *a, const T *y_hat, const long long *labels, const T *targets,
                             int use_labels, long long rows, long long k, int W, double *loss,
                             unsigned long long *correct, int count, long long *offset, long long advance)
{
    double s = 0;
    unsigned long long c = 0;
    LANES(rows, W) {
        const long long r = slot / W;
        const int j = (int)(slot % W);
        const bool here = r < rows && j < k;
        if (slot == 0 && advance) offset[0] += advance;
#ifdef __CUDA_ARCH__
        const long long at = r < rows ? r * k + (here ? j : 0) : 0, label = use_labels && r < rows ? labels[r] : -1;
        const T x = a[at], p = y_hat[at], t = use_labels ? (T)0 : targets[at];
        if (kind == 0) {
            double top = x;
            for (int o = W / 2; o > 0; o /= 2) {
                const double other = __shfl_xor_sync(FULL_WARP, top, o, W);
                top = other > top ? other : top;
            }
            double sum = here ? exp((double)x - top) : 0;
            for (int o = W / 2; o > 0; o /= 2) sum += __shfl_xor_sync(FULL_WARP, sum, o, W);
            const double lse = log(sum) + top;
            if (here) s += use_labels ? (j == label ? lse - (double)x : 0) : (double)t * (lse - (double)x);
        } else if (kind == 1 && here) {
            const double d = (double)p - (use_labels ? (double)(label == j) : (double)t);
            s += d * d;
        }
        if (count) {
            const int p_best = argmax_lanes(p, j, k, W);
            const long long wanted = use_labels ? label : argmax_lanes(t, j, k, W);
            if (here && j == 0 && p_best == wanted) c += 1;
        }
#else
        if (here && j == 0) {
            const long long label = use_labels ? labels[r] : 0, at = r * k;
            totals_row(kind, a + at, y_hat + at, label, targets + at, use_labels, k, count, &s, &c);
        }
#endif
    }
    add_to_totals(kind != 2 ? loss : 0, s, count ? correct : 0, c);
}

#define ROW_KERNELS(T, S)                                                                                        \
extern "C" __global__ void softmax_lanes_##S(T *a, const T *b, int bias, T *out, long long rows, long long k,    \
                                             int W)                                                              \
{                                                                                                                \
    softmax_lanes(a, b, bias, out, rows, k, W);                                                                  \
}                                                                                                                \
extern "C" __global__ void batch_totals_lanes_##S(int kind, const T *a, const T *y_hat, const long long *labels, \
                                                  const T *targets, int use_labels, long long rows, long long k, \
                                                  double *loss, unsigned long long *correct, int count,         \
                                                  long long *offset, long long advance, int W)                   \
{                                                                                                                \
    totals_lanes(kind, a, y_hat, labels, targets, use_labels, rows, k, W, loss, correct, count, offset, advance); \
}                                                                                                                \
extern "C" __global__ void softmax_##S(T *a, const T *b, int bias, T *out, long long rows, long long k)          \
{                                                                                                                \
    ROWS(rows) {                                                                                                 \
        softmax_row(a + r * k, b, bias, out + r * k, k);                                                         \
    }                                                                                                            \
}                                                                                                                \
extern "C" __global__ void batch_totals_##S(int kind, const T *a, const T *y_hat, const long long *labels,       \
                                            const T *targets, int use_labels, long long rows, long long k,       \
                                            double *loss, unsigned long long *correct, int count,               \
                                            long long *offset, long long advance)                                \
{                                                                                                                \
    double s = 0;                                                                                                \
    unsigned long long c = 0;                                                                                    \
    ROWS(rows) {                                                                                                 \
        const long long label = use_labels ? labels[r] : 0, at = r * k;                                          \
        totals_row(kind, a + at, y_hat + at, label, targets + at, use_labels, k, count, &s, &c);                 \
        if (r == 0 && advance) offset[0] += advance;                                                             \
    }                                                                                                            \
    add_to_totals(kind != 2 ? loss : 0, s, count ? correct : 0, c);                                              \
}
ROW_KERNELS(float, f32)
ROW_KERNELS(double, f64)

#define FLOAT_KERNELS(T, S, EXP, SQRT, TANH)                                                                        \
/* grad_aL = (y_hat - e(l)) * (1 / N), and (y_hat - y) * (1 / N) for soft targets */                            \
extern "C" __global__ void ce_grad_##S(const T *y_hat, const long long *labels, T *out, long long n, long long k,\
                                       T scale)                                                                  \
{                                                                                                                \
    ELEMENTS(n * k) {                                                                                            \
        long long r = i / k;                                                                                     \
        out[i] = (i - r * k == labels[r] ? y_hat[i] - (T)1 : y_hat[i]) * scale;                                  \
    }                                                                                                            \
}                                                                                                                \
extern "C" __global__ void soft_grad_##S(const T *y_hat, const T *y, T *out, long long n, T scale)               \
{                                                                                                                \
    ELEMENTS(n) out[i] = (y_hat[i] - y[i]) * scale;                                                              \
}                                                                                                                \
/* a += b, b added to each row of width values, then h = g(a): 0 tanh, 1 logistic, 2 relu, 3 identity (as       \
   activations.py computes g; relu keeps a NaN, as np.maximum does) */                                          \
extern "C" __global__ void forward_##S(int kind, long long n, long long width, const T *b, T *a, T *h)           \
{                                                                                                                \
    ELEMENTS(n) {                                                                                                \
        T x = a[i] + b[i % width];                                                                               \
        a[i] = x;                                                                                                \
        h[i] = kind == 0 ? TANH(x) : kind == 1 ? (T)1 / ((T)1 + EXP(-x)) :                                       \
               kind == 2 ? (x > (T)0 || x != x ? x : (T)0) : x;                                                  \
    }                                                                                                            \
}                                                                                                                \
/* grad_a = grad_h * g'(a): 0 tanh, 1 logistic, 2 relu, 3 identity (as activations.py computes g') */            \
extern "C" __global__ void backward_##S(int kind, long long n, const T *a, const T *h, const T *gh, T *out)      \
{                                                                                                                \
    ELEMENTS(n) {                                                                                                \
        T d = kind == 0 ? (T)1 - h[i] * h[i] : kind == 1 ? ((T)1 - h[i]) * h[i] :                                \
              kind == 2 ? (a[i] > (T)0 ? (T)1 : (T)0) : (T)1;                                                    \
        out[i] = d * gh[i];                                                                                      \
    }                                                                                                            \
}                                                                                                                \
/* The optimizers, as optimizers.py's update methods; the scalars arrive as doubles and are rounded to T once. */\
extern "C" __global__ void sgd_##S(long long n, T *theta, const T *grad, double eta_)                           \
{                                                                                                                \
    const T eta = (T)eta_;                                                                                       \
    ELEMENTS(n) theta[i] = theta[i] - grad[i] * eta;                                                             \
}                                                                                                                \
extern "C" __global__ void momentum_##S(long long n, T *theta, const T *grad, T *u, double beta_, double eta_)   \
{                                                                                                                \
    const T beta = (T)beta_, eta = (T)eta_;                                                                      \
    ELEMENTS(n) { T ui = u[i] * beta + grad[i] * eta; u[i] = ui; theta[i] = theta[i] - ui; }                     \
}                                                                                                                \
extern "C" __global__ void nag_##S(long long n, T *theta, const T *grad, T *u, double beta_, double eta_)        \
{                                                                                                                \
    const T beta = (T)beta_, eta = (T)eta_;                                                                      \
    ELEMENTS(n) {                                                                                                \
        T step = grad[i] * eta; T ui = u[i] * beta + step; u[i] = ui;                                            \
        theta[i] = (theta[i] - step) - ui * beta;                                                                \
    }                                                                                                            \
}                                                                                                                \
extern "C" __global__ void rmsprop_##S(long long n, T *theta, const T *grad, T *v, double beta_, double omb_,    \
                                       double eps_, double eta_)                                                 \
{                                                                                                                \
    const T beta = (T)beta_, omb = (T)omb_, eps = (T)eps_, eta = (T)eta_;                                        \
    ELEMENTS(n) {                                                                                                \
        T g = grad[i]; T vi = v[i] * beta + (g * g) * omb; v[i] = vi;                                            \
        theta[i] = theta[i] - (g / (SQRT(vi) + eps)) * eta;                                                      \
    }                                                                                                            \
}                                                                                                                \
/* Adam and Nadam read the step count t from the device, so that a replayed graph corrects each step's bias. */ \
extern "C" __global__ void adam_##S(long long n, T *theta, const T *grad, T *m, T *v, double b1_, double omb1_,  \
                                    double b2_, double omb2_, double eps_, double lr, const long long *t,        \
                                    int nesterov)                                                                \
{                                                                                                                \
    /* the bias corrections, in double, once per block: per thread they would cost more than the update */       \
    __shared__ T corrected[4];                                                                                   \
    if (threadIdx.x == 0) {                                                                                      \
        const double c1 = 1.0 - pow(b1_, (double)t[0]), c2 = 1.0 - pow(b2_, (double)t[0]);                      \
        corrected[0] = (T)(1.0 / sqrt(c2)); corrected[1] = (T)(lr / c1);                                         \
        corrected[2] = (T)(b1_ / c1); corrected[3] = (T)(omb1_ / c1);                                            \
    }                                                                                                            \
    __syncthreads();                                                                                             \
    const T b1 = (T)b1_, omb1 = (T)omb1_, b2 = (T)b2_, omb2 = (T)omb2_, eps = (T)eps_;                           \
    const T inv_sqrt_c2 = corrected[0], step = corrected[1], a = corrected[2], b = corrected[3], eta = (T)lr;    \
    ELEMENTS(n) {                                                                                                \
        T g = grad[i];                                                                                           \
        T mi = m[i] * b1 + g * omb1;                                                                             \
        T vi = v[i] * b2 + (g * g) * omb2;                                                                       \
        m[i] = mi; v[i] = vi;                                                                                    \
        T den = SQRT(vi) * inv_sqrt_c2 + eps;                                                                    \
        theta[i] = nesterov ? theta[i] - ((mi * a + g * b) / den) * eta : theta[i] - (mi / den) * step;         \
    }                                                                                                            \
}
FLOAT_KERNELS(float, f32, expf, sqrtf, tanhf)
FLOAT_KERNELS(double, f64, exp, sqrt, tanh)
"""

OPTIONS = ("--fmad=false",)

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_THREADS = 256


@functools.cache
def _module():
    return cupy.RawModule(code=SOURCE, options=OPTIONS)


def _kernel(name, dtype=None):
    return _module().get_function(name if dtype is None else f"{name}_{_SUFFIX[np.dtype(dtype)]}")


def _contiguous(x):
    # The kernels index their arrays as C-contiguous; a view that is not (a column slice) is copied first.
    return x if x.flags.c_contiguous else cupy.ascontiguousarray(x)


def _labels_or_targets(y, dtype):
    # Labels as the kernels read them (int64), targets in the outputs' float type; copied only when they are not.
    return _contiguous(y.astype(np.int64 if y.ndim == 1 else dtype, copy=False))


def _launch(kernel, n, args):
    blocks = max(1, min(-(-n // _THREADS), 4096))
    kernel((blocks,), (_THREADS,), args)


def _scalar(x, dtype):
    return np.dtype(dtype).type(x)


def batch_rows(X, Y, perm, offset, x, y):
    """Rows ``perm[offset + i]`` of X and Y into the rows i of ``x`` and ``y`` (``offset`` a one-element int64 device
    array), in one launch. Y holds int64 labels or targets of X's float type."""
    count, width = x.shape[0], math.prod(X.shape[1:])
    y_words = math.prod(Y.shape[1:]) * Y.itemsize // 4
    _launch(_kernel("batch_rows", X.dtype), count * (width + y_words),
            (X, np.int64(width), x, Y, np.int64(y_words), y, perm, offset, np.int64(count)))
    return x, y


def add_to(counter, value):
    """``counter[0] += value`` on the device."""
    _launch(_kernel("add_to"), 1, (counter, np.int64(value)))


def take_rows(X, rows, out):
    """``out[i] = X[rows[i]]`` for a CuPy X and host or device row indices."""
    return cupy.take(X, cupy.asarray(rows), axis=0, out=out)


def _written(out, like):
    # Where a kernel writes: ``out`` itself when it is C-contiguous, else a new array copied into it afterwards.
    if out is None:
        return cupy.empty(like.shape, like.dtype)  # C order: empty_like would keep a transposed input's order
    return out if out.flags.c_contiguous else cupy.empty(out.shape, out.dtype)


def _deliver(result, out):
    if out is not None and result is not out:
        out[...] = result
        return out
    return result


def _lanes(k):
    """The lanes of a warp that take a row of ``k`` values in the row-wise kernels: the power of two >= k, up to 32;
    0 for a longer row, which one thread takes."""
    return 1 << (k - 1).bit_length() if k <= 32 else 0


def _launch_rows(name, dtype, rows, k, args):
    """A row-wise kernel over ``rows`` rows of ``k`` values: its version over a warp's lanes (which takes the lanes
    a row has as its last argument) where the rows are short enough, else one thread a row."""
    W = _lanes(k)
    if W:
        _launch(_kernel(f"{name}_lanes", dtype), rows * W, args + (np.int32(W),))
    else:
        _launch(_kernel(name, dtype), rows, args)


def _softmax(a, b, bias, out):
    rows, k = a.shape
    _launch_rows("softmax", a.dtype, rows, k, (a, b, np.int32(bias), out, np.int64(rows), np.int64(k)))


def softmax(a, out=None):
    result, a = _written(out, a), _contiguous(a)
    _softmax(a, a, False, result)  # a stands in for the bias, which is not read
    return _deliver(result, out)


def _bias_kernel_takes(a, b, out):
    # the kernels that add a bias read C-contiguous device arrays of one float type: a and out of one 2-D shape, b
    # one value per column
    return (all(is_array(x) and x.dtype == out.dtype and x.flags.c_contiguous for x in (a, b, out))
            and a.ndim == 2 and a.shape == out.shape and b.size == a.shape[1] and out.dtype in _FLOATS)


def add_bias_softmax(a, b, out):
    """``a += b`` (b added to each row), then ``out = softmax(a)``, in one launch; False for arrays the kernel does
    not take."""
    if not _bias_kernel_takes(a, b, out):
        return False
    _softmax(a, b, True, out)
    return True


def grad_softmax_cross_entropy(y_hat, y, out=None):
    """(y_hat - e(l)) / N, or (y_hat - y) / N for targets; as outputs.grad_softmax_cross_entropy."""
    result = _written(out, y_hat)
    (n, k), y_hat, y = y_hat.shape, _contiguous(y_hat), _labels_or_targets(y, y_hat.dtype)
    scale = _scalar(1.0 / n, y_hat.dtype)
    if y.ndim == 1:
        _launch(_kernel("ce_grad", y_hat.dtype), n * k, (y_hat, y, result, np.int64(n), np.int64(k), scale))
    else:
        _launch(_kernel("soft_grad", y_hat.dtype), n * k, (y_hat, y, result, np.int64(n * k), scale))
    return _deliver(result, out)


_LOSS_KINDS = {"cross_entropy": 0, "squared_error": 1, None: 2}


def add_totals(loss, a, y_hat, y, loss_total, correct_total=None, offset=None, advance=0):
    """Add a batch's summed loss (``loss`` 'cross_entropy' from a_L, 'squared_error' from y_hat, or None) to the
    float64 device scalar ``loss_total``, the rows whose largest output is at their label (or at their largest
    target) to the uint64 ``correct_total`` when given, and ``advance`` to ``offset``, in one launch."""
    (rows, k), a, y_hat, y = a.shape, _contiguous(a), _contiguous(y_hat), _labels_or_targets(y, a.dtype)
    counter = offset if offset is not None else cupy.zeros(1, np.int64)
    args = (np.int32(_LOSS_KINDS[loss]), a, y_hat, y, y, np.int32(y.ndim == 1), np.int64(rows), np.int64(k),
            loss_total, loss_total if correct_total is None else correct_total, np.int32(correct_total is not None),
            counter, np.int64(advance))  # y, and loss_total, stand in for the pointers that are not read
    _launch_rows("batch_totals", a.dtype, rows, k, args)


def loss(kind, a, y_hat, y):
    """The batch-mean loss as a Python float (this waits for the GPU)."""
    total = cupy.zeros(1, np.float64)
    add_totals(kind, a, y_hat, y, total)
    return float(total[0]) / a.shape[0]


def count_correct(y_hat, labels):
    total = cupy.zeros(1, np.uint64)
    add_totals(None, y_hat, y_hat, labels, cupy.zeros(1, np.float64), total)
    return int(total[0])


def forward(kind, a, b, out):
    """``a += b`` (b added to each row), then ``out = g(a)`` for the built-in g numbered ``kind``; False for arrays
    the kernel does not take."""
    if not _bias_kernel_takes(a, b, out):
        return False
    _launch(_kernel("forward", out.dtype), out.size, (np.int32(kind), np.int64(out.size), np.int64(a.shape[1]),
                                                      b, a, out))
    return True


def backward(kind, a, h, grad_h, out):
    """``out = grad_h * g'(a)`` for the built-in g' numbered ``kind``; False for arrays the kernel does not take."""
    arrays = (a, h, grad_h, out)
    if not all(is_array(x) and x.dtype == out.dtype and x.shape == out.shape and x.flags.c_contiguous
               for x in arrays) or out.dtype not in _FLOATS:
        return False
    _launch(_kernel("backward", out.dtype), out.size, (np.int32(kind), np.int64(out.size), *arrays))
    return True


def _adam_scalars(o):
    return o.beta1, 1 - o.beta1, o.beta2, 1 - o.beta2, o.epsilon, o.learning_rate


# Each rule's kernel, state slots and scalars (as the rule's ``fused`` method passes them to the CPU kernels).
OPTIMIZER_KERNELS = {
    "sgd": ("sgd", (), lambda o: (o.learning_rate,)),
    "momentum": ("momentum", ("u",), lambda o: (o.momentum, o.learning_rate)),
    "nag": ("nag", ("u",), lambda o: (o.momentum, o.learning_rate)),
    "rmsprop": ("rmsprop", ("v",), lambda o: (o.beta, 1 - o.beta, o.epsilon, o.learning_rate)),
    "adam": ("adam", ("m", "v"), _adam_scalars),
    "nadam": ("adam", ("m", "v"), _adam_scalars),  # the same kernel, with its Nesterov flag set
}


class StepCounter:
    """An optimizer's step count t on the device, and the value the host last knew it to have."""

    def __init__(self, t):
        self.array = cupy.full(1, t, np.int64)
        self.host = t

    def sync(self, t):
        if self.host != t:
            self.array.fill(t)
            self.host = t


def optimizer_step(optimizer, key, theta, grad):
    """One update of ``theta`` by ``optimizer``'s rule in one kernel; False when the rule has none here.

    The step count is advanced on the device as well as on the host (``optimizer.t`` was already advanced), so a
    captured step corrects each replay's bias with its own t."""
    if optimizer.name not in OPTIMIZER_KERNELS or theta.dtype not in _FLOATS or not (
            theta.flags.c_contiguous and grad.flags.c_contiguous and grad.dtype == theta.dtype):
        return False
    name, slots, scalars = OPTIMIZER_KERNELS[optimizer.name]
    args = [np.int64(theta.size), theta, grad, *(optimizer.slot(s, key, theta) for s in slots),
            *(np.float64(s) for s in scalars(optimizer))]
    if name == "adam":
        counter = step_counter(optimizer)
        counter.sync(optimizer.t - 1)
        add_to(counter.array, 1)
        counter.host = optimizer.t
        args += [counter.array, np.int32(optimizer.name == "nadam")]
    _launch(_kernel(name, theta.dtype), theta.size, tuple(args))
    return True


def step_counter(optimizer):
    """The optimizer's StepCounter, created on first use."""
    counter = getattr(optimizer, "device_t", None)
    if counter is None:
        counter = optimizer.device_t = StepCounter(optimizer.t)
    return counter


# -- products ------------------------------------------------------------------------------------------------------
# cuBLAS is column-major: a row-major (r, c) array with unit column stride is, to cuBLAS, its transpose (c, r) with
# leading dimension its row stride. So out = A @ B (row-major) is out^T = B^T A^T (column-major).

_OP_N, _OP_T = 0, 1


class _Blas:
    """ffnn's own cuBLAS handle, its workspace, and the stream it is bound to."""

    WORKSPACE = 32 << 20  # what NVIDIA recommends for Hopper; a fixed workspace keeps captured products allocation-free

    def __init__(self):
        cupy.cuda.device.get_cublas_handle()  # makes CuPy load libcublas, whose path we then read
        self.lib = ctypes.CDLL(_loaded_library("libcublas.so"))
        handle = ctypes.c_void_p()
        _check(self.lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
        self.handle = handle
        self.workspace = cupy.empty(self.WORKSPACE, np.uint8)
        self.stream = None
        v = ctypes.c_void_p
        for name, scalar in (("cublasSgemm_v2", ctypes.c_float), ("cublasDgemm_v2", ctypes.c_double)):
            getattr(self.lib, name).argtypes = [v, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                ctypes.c_int, ctypes.POINTER(scalar), v, ctypes.c_int, v,
                                                ctypes.c_int, ctypes.POINTER(scalar), v, ctypes.c_int]
        self.scalars = {  # the product and references to its alpha = 1 and beta = 0
            np.dtype(np.float32): (self.lib.cublasSgemm_v2, ctypes.byref(ctypes.c_float(1)),
                                   ctypes.byref(ctypes.c_float(0))),
            np.dtype(np.float64): (self.lib.cublasDgemm_v2, ctypes.byref(ctypes.c_double(1)),
                                   ctypes.byref(ctypes.c_double(0)))}

    def bind(self, stream_ptr):
        # Binding resets cuBLAS's workspace to its own pool, so ours is set again after it.
        if stream_ptr != self.stream:
            _check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream_ptr)), "cublasSetStream")
            _check(self.lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                                  ctypes.c_size_t(self.WORKSPACE)), "cublasSetWorkspace")
            self.stream = stream_ptr


def _check(status, call):
    if status != 0:
        raise RuntimeError(f"{call} failed with cuBLAS status {status}")


def _loaded_library(stem):
    # The path of a shared library this process has loaded (CuPy finds cuBLAS its own way; we use the same file).
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if stem in path.rsplit("/", 1)[-1]:
                return path
    return stem + ".12"


@functools.cache
def _blas(device_id):
    return _Blas()


def _layout(x):
    """(op, leading dimension) for a 2-D array as cuBLAS sees it, or None when neither of its strides is 1."""
    r, c = x.shape
    s0, s1 = (s // x.itemsize for s in x.strides)
    if c == 1 or s1 == 1:  # rows are contiguous: cuBLAS sees x^T
        ld = s0 if r > 1 else c
        if ld >= max(c, 1):
            return _OP_N, ld
    if r == 1 or s0 == 1:  # columns are contiguous: cuBLAS sees x
        ld = s1 if c > 1 else r
        if ld >= max(r, 1):
            return _OP_T, ld
    return None


def _product_layouts(A, B, out):
    """The layouts of A, B and out for cuBLAS's ``out = A @ B``, or None where it cannot take them (out must have
    contiguous rows; the three one float type, of matching shapes)."""
    layouts = [_layout(x) for x in (A, B, out)]
    (M, K), N = A.shape, B.shape[1]
    if (None in layouts or layouts[2][0] != _OP_N or out.dtype not in _FLOATS
            or not A.dtype == B.dtype == out.dtype or B.shape[0] != K or out.shape != (M, N)):
        return None
    return layouts


def gemm(A, B, out):
    """``out = A @ B`` for 2-D float32 or float64 CuPy arrays, through cuBLAS on the current stream."""
    layouts = _product_layouts(A, B, out)
    if layouts is None:
        return cupy.matmul(A, B, out=out)  # not capturable, but right
    (M, K), N = A.shape, B.shape[1]
    if M == 0 or N == 0:
        return out
    if K == 0:
        out.fill(0)
        return out
    blas = _blas(cupy.cuda.Device().id)
    blas.bind(cupy.cuda.get_current_stream().ptr)
    fn, one, zero = blas.scalars[out.dtype]
    (op_a, lda), (op_b, ldb), (_, ldc) = layouts
    _check(fn(blas.handle, op_b, op_a, N, M, K, one, B.data.ptr, ldb, A.data.ptr, lda, zero, out.data.ptr, ldc),
           "gemm")
    return out


# -- a weight gradient and its bias gradient in one product (cuBLASLt) -----------------------------------------------
# grad_Wk^T = h_{k-1}^T grad_ak and grad_bk = grad_ak summed over rows are one cuBLASLt product whose epilogue sums
# cuBLAS's A (grad_ak, as it sees it) over the inner dimension as it goes: the BGRADA epilogue. That saves the
# separate ones @ grad_ak product, one launch per layer.

FUSED_BIAS_GRADIENT = not os.environ.get("FFNN_NO_FUSED_BIAS_GRADIENT")  # =1: the bias gradient as its own product
_NO_PLAN = object()


class _HeuristicResult(ctypes.Structure):
    _fields_ = [("algo", ctypes.c_uint64 * 8), ("workspace_size", ctypes.c_size_t), ("state", ctypes.c_int),
                ("waves", ctypes.c_float), ("reserved", ctypes.c_int * 4)]


class _Lt:
    """A cuBLASLt handle and its plans: for each shape, layout and alignment of the operands, the product's
    descriptors and the algorithm cuBLASLt's heuristic picks (its first choice, so that every run takes the same),
    or None where it has none with this epilogue (float64 on some GPUs). The heuristic cannot run while a stream is
    being captured, so plans are made by the eager steps that come before a capture."""

    COMPUTE = {np.dtype(np.float32): 68, np.dtype(np.float64): 70}  # CUBLAS_COMPUTE_32F, _64F (no TF32)
    DATA = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}       # CUDA_R_32F, CUDA_R_64F
    TRANSA, TRANSB, EPILOGUE, BIAS_POINTER = 3, 4, 7, 8  # cublasLtMatmulDescAttributes_t
    BGRADA = 256                                         # cublasLtEpilogue_t
    MAX_WORKSPACE, MIN_ALIGNMENT = 1, (5, 6, 7, 8)  # cublasLtMatmulPreferenceAttributes_t (A, B, C, D alignment)

    def __init__(self, blas):
        self.lib = ctypes.CDLL(_loaded_library("libcublasLt.so"))
        self.blas = blas  # whose workspace the products share: they run in stream order with cuBLAS's
        handle = ctypes.c_void_p()
        _check(self.lib.cublasLtCreate(ctypes.byref(handle)), "cublasLtCreate")
        self.handle = handle
        v = ctypes.c_void_p
        self.lib.cublasLtMatrixLayoutCreate.argtypes = [v, ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64,
                                                        ctypes.c_int64]
        self.lib.cublasLtMatmulAlgoGetHeuristic.argtypes = [v, v, v, v, v, v, v, ctypes.c_int, v, v]
        self.lib.cublasLtMatmul.argtypes = [v] * 14 + [ctypes.c_size_t, v]
        self.plans = {}
        self.kept = []  # every descriptor made, alive as long as the handle

    def _set(self, setter, obj, attribute, value):
        _check(setter(obj, attribute, ctypes.byref(value), ctypes.c_size_t(ctypes.sizeof(value))),
               setter.__name__)

    def plan(self, dtype, ops, shape, lds, alignments, bias):
        """The descriptors and algorithm for ``D = op(A) op(B)`` with BGRADA, in cuBLAS's terms, for operands A, B,
        C = D and the bias at addresses of these ``alignments`` (``bias`` one such address), or None."""
        lib, (op_a, op_b), (m, n, k), (lda, ldb, ldc) = self.lib, ops, shape, lds
        desc, pref = ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib.cublasLtMatmulDescCreate(ctypes.byref(desc), self.COMPUTE[dtype], self.DATA[dtype]),
               "cublasLtMatmulDescCreate")
        self.kept.append(desc)
        setter = lib.cublasLtMatmulDescSetAttribute
        self._set(setter, desc, self.TRANSA, ctypes.c_int32(op_a))
        self._set(setter, desc, self.TRANSB, ctypes.c_int32(op_b))
        self._set(setter, desc, self.EPILOGUE, ctypes.c_uint32(self.BGRADA))
        self._set(setter, desc, self.BIAS_POINTER, ctypes.c_void_p(bias))  # the heuristic reads its alignment
        layouts = []
        for rows, cols, ld in (((m, k) if op_a == _OP_N else (k, m)) + (lda,),
                               ((k, n) if op_b == _OP_N else (n, k)) + (ldb,), (m, n, ldc)):
            layout = ctypes.c_void_p()
            _check(lib.cublasLtMatrixLayoutCreate(ctypes.byref(layout), self.DATA[dtype], rows, cols, ld),
                   "cublasLtMatrixLayoutCreate")
            self.kept.append(layout)
            layouts.append(layout)
        _check(lib.cublasLtMatmulPreferenceCreate(ctypes.byref(pref)), "cublasLtMatmulPreferenceCreate")
        self.kept.append(pref)
        setter = lib.cublasLtMatmulPreferenceSetAttribute
        self._set(setter, pref, self.MAX_WORKSPACE, ctypes.c_uint64(_Blas.WORKSPACE))
        for attribute, alignment in zip(self.MIN_ALIGNMENT, alignments[:4]):
            self._set(setter, pref, attribute, ctypes.c_uint32(alignment))
        result, found = _HeuristicResult(), ctypes.c_int(0)
        a, b, c = layouts
        status = lib.cublasLtMatmulAlgoGetHeuristic(self.handle, desc, a, b, c, c, pref, 1, ctypes.byref(result),
                                                    ctypes.byref(found))
        if status != 0 or found.value < 1 or result.state != 0:  # no algorithm for this product with this epilogue
            return None
        one, zero = (ctypes.c_float(1), ctypes.c_float(0)) if dtype == np.float32 else (ctypes.c_double(1),
                                                                                         ctypes.c_double(0))
        return desc, a, b, c, result, one, zero

    def run(self, plan, A, B, D, bias, stream_ptr):
        """``D = op(A) op(B)`` and ``bias`` = op(A)'s rows summed, on the stream: the plan's product."""
        desc, a, b, c, result, one, zero = plan
        self._set(self.lib.cublasLtMatmulDescSetAttribute, desc, self.BIAS_POINTER, ctypes.c_void_p(bias))
        workspace = self.blas.workspace
        _check(self.lib.cublasLtMatmul(self.handle, desc, ctypes.byref(one), ctypes.c_void_p(A), a,
                                       ctypes.c_void_p(B), b, ctypes.byref(zero), ctypes.c_void_p(D), c,
                                       ctypes.c_void_p(D), c, ctypes.byref(result.algo),
                                       ctypes.c_void_p(workspace.data.ptr), ctypes.c_size_t(_Blas.WORKSPACE),
                                       ctypes.c_void_p(stream_ptr)), "cublasLtMatmul")


@functools.cache
def _lt(device_id):
    """The device's _Lt, or None where cuBLASLt cannot be loaded."""
    try:
        return _Lt(_blas(device_id))
    except (OSError, AttributeError, RuntimeError):
        return None


def _alignment(ptr):
    # the largest power of two, up to 256 bytes, that divides the address
    return min(ptr & -ptr, 256) if ptr else 256


def gemm_column_sums(A, B, out, sums):
    """``out = A @ B`` and ``sums`` = the rows of B summed, in one cuBLASLt product for 2-D float32 or float64 CuPy
    arrays (``sums`` C-contiguous, of B's width); False where that product does not apply, and the caller then
    takes the two products."""
    if not (FUSED_BIAS_GRADIENT and all(is_array(x) for x in (A, B, out, sums))):
        return False
    (M, K), N = A.shape, B.shape[1]
    layouts = _product_layouts(A, B, out)
    if (layouts is None or min(M, N, K) == 0 or sums.dtype != out.dtype or sums.size != N
            or not sums.flags.c_contiguous):
        return False
    lt = _lt(cupy.cuda.Device().id)
    if lt is None:
        return False
    stream = cupy.cuda.get_current_stream()
    (op_a, lda), (op_b, ldb), (_, ldc) = layouts
    # out^T = B^T A^T in cuBLAS's column-major terms: its A is our B, whose rows BGRADA sums
    key = (out.dtype, (op_b, op_a), (N, M, K), (ldb, lda, ldc),
           tuple(_alignment(x.data.ptr) for x in (B, A, out, out, sums)))
    plan = lt.plans.get(key, _NO_PLAN)
    if plan is _NO_PLAN:
        if stream.is_capturing():  # cuBLASLt's heuristic cannot be asked now
            return False
        try:
            plan = lt.plan(*key, sums.data.ptr)
        except RuntimeError:  # a descriptor this cuBLASLt does not take
            plan = None
        lt.plans[key] = plan
    if plan is None:
        return False
    try:
        lt.run(plan, B.data.ptr, A.data.ptr, out.data.ptr, sums.data.ptr, stream.ptr)
    except RuntimeError:  # refused at launch (nothing was run): the two products from now on
        lt.plans[key] = None
        return False
    return True
