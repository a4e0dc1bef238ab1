/* ffnn's compiled kernels: each rule of optimizers.py as one pass over the flat parameter vector; the mini-batch
 * gathers (rows of a float array, or of bytes converted to floats); grad_h * g'(a) for the built-in activations;
 * and the count of correct predictions.
 *
 * Every function performs exactly the float operations of the NumPy code it stands for, in the same order and in
 * the arrays' precision (float32 or float64), so both give bit-identical results: the build uses
 * -ffp-contract=off (no fused multiply-add) and no fast-math. Scalars arrive as Python floats and are rounded to
 * the array's precision once, as NumPy does with a Python scalar. The GIL is released during the loops.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

#if defined(_MSC_VER)
#define restrict __restrict
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch((address), 0, 3)
#else
#define PREFETCH(address) ((void)0)
#endif

#define MAX_ARRAYS 4
#define MAX_SCALARS 9

/* One call's operands: n elements of arrays[0..n_arrays) (theta first, then grad, then state), all of one dtype. */
typedef struct {
    Py_buffer views[MAX_ARRAYS];
    int n_views;
    int is_double;
    Py_ssize_t n;
    double s[MAX_SCALARS];
} Operands;

static void release(Operands *op)
{
    for (int i = 0; i < op->n_views; i++)
        PyBuffer_Release(&op->views[i]);
    op->n_views = 0;
}

/* Parse (array, ..., float, ...): n_arrays writable C-contiguous buffers of equal length and float32 or
 * float64 items, then n_scalars Python floats. */
static int parse(PyObject *args, int n_arrays, int n_scalars, Operands *op)
{
    op->n_views = 0;
    if (PyTuple_GET_SIZE(args) != n_arrays + n_scalars) {
        PyErr_Format(PyExc_TypeError, "expected %d arrays and %d scalars", n_arrays, n_scalars);
        return -1;
    }
    for (int i = 0; i < n_arrays; i++) {
        Py_buffer *v = &op->views[i];
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, i), v, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            release(op);
            return -1;
        }
        op->n_views++;
        const char *f = v->format ? v->format : "B";
        if (*f == '<' || *f == '=' || *f == '@')
            f++;
        int is_double = strcmp(f, "d") == 0;
        if (!(is_double || strcmp(f, "f") == 0)) {
            PyErr_SetString(PyExc_TypeError, "arrays must be float32 or float64");
            release(op);
            return -1;
        }
        Py_ssize_t n = v->len / v->itemsize;
        if (i == 0) {
            op->is_double = is_double;
            op->n = n;
        } else if (is_double != op->is_double || n != op->n) {
            PyErr_SetString(PyExc_TypeError, "arrays must have one dtype and one length");
            release(op);
            return -1;
        }
    }
    for (int j = 0; j < n_scalars; j++) {
        op->s[j] = PyFloat_AsDouble(PyTuple_GET_ITEM(args, n_arrays + j));
        if (op->s[j] == -1.0 && PyErr_Occurred()) {
            release(op);
            return -1;
        }
    }
    return 0;
}

#define BUF(T, i) ((T *)op.views[i].buf)

/* New parameters are written with non-temporal (streaming) stores. The matrix products of the next batch read
 * theta on every core BLAS runs on, so its cache lines sit in more than one core's cache; an ordinary store must
 * first take each line back from the other cores, which on a virtual machine whose cores sit far apart costs up
 * to seven times the update itself (590 us instead of 80 us for Adam at batch 64). A streaming store writes the
 * whole line without asking. Each rule computes a block of new values into a small buffer and streams it out:
 * the numbers are the same, only how they reach memory differs. */
#define BLOCK 256

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
/* dst[0:n] = src[0:n], the 16-byte-aligned middle part of dst with streaming stores of LANES elements each. */
#define STREAM_COPY(NAME, T, LANES, STORE)                                                                           \
    static inline void NAME(T *dst, const T *src, Py_ssize_t n)                                                      \
    {                                                                                                                \
        Py_ssize_t i = 0;                                                                                            \
        for (; i < n && ((uintptr_t)(dst + i) & 15); i++)                                                            \
            dst[i] = src[i];                                                                                         \
        for (; i + LANES <= n; i += LANES)                                                                           \
            STORE;                                                                                                   \
        for (; i < n; i++)                                                                                           \
            dst[i] = src[i];                                                                                         \
    }
STREAM_COPY(stream_float, float, 4, _mm_stream_ps(dst + i, _mm_loadu_ps(src + i)))
STREAM_COPY(stream_double, double, 2, _mm_stream_pd(dst + i, _mm_loadu_pd(src + i)))
STREAM_COPY(stream_bytes, char, 16, _mm_stream_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i))))
#define STREAM_FENCE() _mm_sfence() /* streamed lines are visible to other cores before the call returns */
#else
static inline void stream_float(float *dst, const float *src, Py_ssize_t n) { memcpy(dst, src, n * sizeof *dst); }
static inline void stream_double(double *dst, const double *src, Py_ssize_t n) { memcpy(dst, src, n * sizeof *dst); }
static inline void stream_bytes(char *dst, const char *src, Py_ssize_t n) { memcpy(dst, src, n); }
#define STREAM_FENCE() ((void)0)
#endif

/* When to stream. Only arrays of at least STREAM_MIN_BYTES (a quarter of a core's L2 cache here) are candidates:
 * a small network's parameters and batches stay in the cache. And only while ordinary stores are slow: on a quiet
 * machine they are as fast, and what they write stays in the cache for the next products, whereas a streamed array
 * must be fetched from memory again. So each kind of call (parameter update, batch gather) keeps a smoothed time
 * per byte for either kind of store, runs one call in PROBE_EVERY with the kind it is not using, to keep both
 * current, and streams while streaming is STREAM_ADVANTAGE times faster. The numbers written are the same either
 * way: this only decides how fast they get there. */
#define STREAM_MIN_BYTES (256 * 1024)
#define PROBE_EVERY 32
#define STREAM_ADVANTAGE 2.0

enum { STORES_AUTO, STORES_ORDINARY, STORES_STREAMING };
static const char *store_settings[] = {"auto", "ordinary", "streaming"};
static int store_setting = STORES_AUTO; /* store_policy() sets it: tests and benchmarks fix one kind */

typedef struct {
    double per_byte[2];      /* smoothed seconds per byte: ordinary stores, streaming stores; 0 = none yet */
    long since_probe;
    long long calls[2];      /* large calls made with each */
} StorePolicy;

static StorePolicy update_policy, gather_policy;

static int choose_streaming(StorePolicy *policy, Py_ssize_t bytes)
{
    if (bytes < STREAM_MIN_BYTES)
        return 0;
    int streamed;
    if (store_setting != STORES_AUTO) {
        streamed = store_setting == STORES_STREAMING;
    } else {
        const double *t = policy->per_byte;
        int preferred = t[0] > 0 && t[1] > 0 && t[1] * STREAM_ADVANTAGE < t[0];
        streamed = preferred;
        if (t[!preferred] == 0 || ++policy->since_probe >= PROBE_EVERY) {
            streamed = !preferred;
            policy->since_probe = 0;
        }
    }
    policy->calls[streamed]++;
    return streamed;
}

#if defined(_WIN32)
#include <windows.h>
static double seconds_now(void)
{
    LARGE_INTEGER count, frequency;
    QueryPerformanceCounter(&count);
    QueryPerformanceFrequency(&frequency);
    return (double)count.QuadPart / (double)frequency.QuadPart;
}
#else
static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#endif

static void observe_stores(StorePolicy *policy, int streamed, double seconds, Py_ssize_t bytes)
{
    if (bytes < STREAM_MIN_BYTES || seconds <= 0)
        return;
    double per_byte = seconds / (double)bytes, *t = &policy->per_byte[streamed];
    *t = *t == 0 ? per_byte : *t + 0.25 * (per_byte - *t);
}

/* Runs CALL without the GIL under POLICY for a write of BYTES: CALL sees `streamed`, and its time is observed. */
#define UNDER_STORE_POLICY(POLICY, BYTES, CALL)                                                                      \
    do {                                                                                                             \
        int streamed = choose_streaming(POLICY, BYTES);                                                              \
        double seconds;                                                                                              \
        Py_BEGIN_ALLOW_THREADS seconds = seconds_now();                                                              \
        CALL;                                                                                                        \
        seconds = seconds_now() - seconds;                                                                           \
        Py_END_ALLOW_THREADS observe_stores(POLICY, streamed, seconds, BYTES);                                       \
    } while (0)

/* The loop every rule shares: for each i, BODY computes the new theta[i] as `next` (it may update state arrays at
 * i). Written in place, or, when `streamed`, block by block into a small buffer that is then streamed into theta. */
#define UPDATE_LOOP(T, BODY)                                                                                         \
    if (!streamed) {                                                                                                 \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                         \
            T next;                                                                                                  \
            BODY                                                                                                     \
            theta[i] = next;                                                                                         \
        }                                                                                                            \
        return;                                                                                                      \
    }                                                                                                                \
    T next_block[BLOCK];                                                                                             \
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {                                                          \
        Py_ssize_t len = n - start < BLOCK ? n - start : BLOCK;                                                      \
        for (Py_ssize_t j = 0; j < len; j++) {                                                                       \
            Py_ssize_t i = start + j;                                                                                \
            T next;                                                                                                  \
            BODY                                                                                                     \
            next_block[j] = next;                                                                                    \
        }                                                                                                            \
        stream_##T(theta + start, next_block, len);                                                                  \
    }                                                                                                                \
    STREAM_FENCE();

/* Each rule is written once as a macro over the element type T and instantiated for float and double. */

/* SGD: theta <- theta - (grad * eta) */
#define SGD_BODY(T)                                                                                                  \
    MULTIVERSION static void sgd_##T(Py_ssize_t n, T *restrict theta, const T *restrict grad, T eta, int streamed)   \
    {                                                                                                                \
        UPDATE_LOOP(T, next = theta[i] - grad[i] * eta;)                                                             \
    }
SGD_BODY(float)
SGD_BODY(double)

/* Momentum: u <- u * beta + grad * eta; theta <- theta - u */
#define MOMENTUM_BODY(T)                                                                                             \
    MULTIVERSION static void momentum_##T(Py_ssize_t n, T *restrict theta, const T *restrict grad,                   \
                                          T *restrict u, T beta, T eta, int streamed)                                \
    {                                                                                                                \
        UPDATE_LOOP(T, T ui = u[i] * beta + grad[i] * eta; u[i] = ui; next = theta[i] - ui;)                         \
    }
MOMENTUM_BODY(float)
MOMENTUM_BODY(double)

/* NAG (look-ahead form): step = grad * eta; u <- u * beta + step; theta <- (theta - step) - u * beta */
#define NAG_BODY(T)                                                                                                  \
    MULTIVERSION static void nag_##T(Py_ssize_t n, T *restrict theta, const T *restrict grad, T *restrict u,         \
                                     T beta, T eta, int streamed)                                                    \
    {                                                                                                                \
        UPDATE_LOOP(T, T step = grad[i] * eta; T ui = u[i] * beta + step; u[i] = ui;                                 \
                    next = (theta[i] - step) - ui * beta;)                                                           \
    }
NAG_BODY(float)
NAG_BODY(double)

/* RMSprop: v <- v * beta + (grad^2) * (1 - beta); theta <- theta - (grad / (sqrt(v) + eps)) * eta */
#define RMSPROP_BODY(T, SQRT)                                                                                        \
    MULTIVERSION static void rmsprop_##T(Py_ssize_t n, T *restrict theta, const T *restrict grad,                    \
                                         T *restrict v, T beta, T one_minus_beta, T eps, T eta, int streamed)        \
    {                                                                                                                \
        UPDATE_LOOP(T, T g = grad[i]; T vi = v[i] * beta + (g * g) * one_minus_beta; v[i] = vi;                      \
                    next = theta[i] - (g / (SQRT(vi) + eps)) * eta;)                                                 \
    }
RMSPROP_BODY(float, sqrtf)
RMSPROP_BODY(double, sqrt)

/* Adam's moments: m <- m * beta1 + grad * (1 - beta1); v <- v * beta2 + (grad^2) * (1 - beta2);
 * den = sqrt(v) * (1 / sqrt(1 - beta2^t)) + eps. Adam: theta <- theta - (m / den) * (eta / (1 - beta1^t)).
 * Nadam: theta <- theta - ((m * a + grad * b) / den) * eta with a = beta1 / c1, b = (1 - beta1) / c1. */
#define ADAM_MOMENTS(T, SQRT)                                                                                        \
    T g = grad[i];                                                                                                   \
    T mi = m[i] * beta1 + g * one_minus_beta1;                                                                       \
    T vi = v[i] * beta2 + (g * g) * one_minus_beta2;                                                                 \
    m[i] = mi;                                                                                                       \
    v[i] = vi;                                                                                                       \
    T den = SQRT(vi) * inv_sqrt_c2 + eps;
#define ADAM_ARGS(T)                                                                                                 \
    Py_ssize_t n, T *restrict theta, const T *restrict grad, T *restrict m, T *restrict v, T beta1,                  \
        T one_minus_beta1, T beta2, T one_minus_beta2, T inv_sqrt_c2, T eps
#define ADAM_BODY(T, SQRT)                                                                                           \
    MULTIVERSION static void adam_##T(ADAM_ARGS(T), T step, int streamed)                                            \
    {                                                                                                                \
        UPDATE_LOOP(T, ADAM_MOMENTS(T, SQRT) next = theta[i] - (mi / den) * step;)                                   \
    }                                                                                                                \
    MULTIVERSION static void nadam_##T(ADAM_ARGS(T), T a, T b, T eta, int streamed)                                  \
    {                                                                                                                \
        UPDATE_LOOP(T, ADAM_MOMENTS(T, SQRT) next = theta[i] - ((mi * a + g * b) / den) * eta;)                      \
    }
ADAM_BODY(float, sqrtf)
ADAM_BODY(double, sqrt)

/* The Python entry points: parse, dispatch on the dtype, run without the GIL. */
#define ENTRY(NAME, N_ARRAYS, N_SCALARS, CALL_F, CALL_D)                                                             \
    static PyObject *py_##NAME(PyObject *self, PyObject *args)                                                       \
    {                                                                                                                \
        Operands op;                                                                                                 \
        if (parse(args, N_ARRAYS, N_SCALARS, &op) < 0)                                                               \
            return NULL;                                                                                             \
        const double *s = op.s;                                                                                      \
        (void)s;                                                                                                     \
        UNDER_STORE_POLICY(&update_policy, op.n * (op.is_double ? 8 : 4),                                            \
                           if (op.is_double) { CALL_D; } else { CALL_F; });                                          \
        release(&op);                                                                                                \
        Py_RETURN_NONE;                                                                                              \
    }

#define F(i) ((float)s[i])
#define D(i) (s[i])

ENTRY(sgd, 2, 1, sgd_float(op.n, BUF(float, 0), BUF(float, 1), F(0), streamed),
      sgd_double(op.n, BUF(double, 0), BUF(double, 1), D(0), streamed))
ENTRY(momentum, 3, 2, momentum_float(op.n, BUF(float, 0), BUF(float, 1), BUF(float, 2), F(0), F(1), streamed),
      momentum_double(op.n, BUF(double, 0), BUF(double, 1), BUF(double, 2), D(0), D(1), streamed))
ENTRY(nag, 3, 2, nag_float(op.n, BUF(float, 0), BUF(float, 1), BUF(float, 2), F(0), F(1), streamed),
      nag_double(op.n, BUF(double, 0), BUF(double, 1), BUF(double, 2), D(0), D(1), streamed))
ENTRY(rmsprop, 3, 4,
      rmsprop_float(op.n, BUF(float, 0), BUF(float, 1), BUF(float, 2), F(0), F(1), F(2), F(3), streamed),
      rmsprop_double(op.n, BUF(double, 0), BUF(double, 1), BUF(double, 2), D(0), D(1), D(2), D(3), streamed))
ENTRY(adam, 4, 7,
      adam_float(op.n, BUF(float, 0), BUF(float, 1), BUF(float, 2), BUF(float, 3), F(0), F(1), F(2), F(3), F(4),
                 F(5), F(6), streamed),
      adam_double(op.n, BUF(double, 0), BUF(double, 1), BUF(double, 2), BUF(double, 3), D(0), D(1), D(2), D(3),
                  D(4), D(5), D(6), streamed))
ENTRY(nadam, 4, 9,
      nadam_float(op.n, BUF(float, 0), BUF(float, 1), BUF(float, 2), BUF(float, 3), F(0), F(1), F(2), F(3), F(4),
                  F(5), F(6), F(7), F(8), streamed),
      nadam_double(op.n, BUF(double, 0), BUF(double, 1), BUF(double, 2), BUF(double, 3), D(0), D(1), D(2), D(3),
                   D(4), D(5), D(6), D(7), D(8), streamed))

/* grad_a = grad_h * g'(a) for each activation, as activations.py computes it: g'(a) first (from h = g(a) or from a),
 * then the product. No restrict: out may be one of the inputs. */
#define BACKWARD_BODY(T)                                                                                             \
    MULTIVERSION static void tanh_backward_##T(Py_ssize_t n, const T *a, const T *h, const T *gh, T *out)            \
    {                                                                                                                \
        (void)a;                                                                                                     \
        for (Py_ssize_t i = 0; i < n; i++)                                                                           \
            out[i] = ((T)1 - h[i] * h[i]) * gh[i];                                                                   \
    }                                                                                                                \
    MULTIVERSION static void logistic_backward_##T(Py_ssize_t n, const T *a, const T *h, const T *gh, T *out)        \
    {                                                                                                                \
        (void)a;                                                                                                     \
        for (Py_ssize_t i = 0; i < n; i++)                                                                           \
            out[i] = (((T)1 - h[i]) * h[i]) * gh[i];                                                                 \
    }                                                                                                                \
    MULTIVERSION static void relu_backward_##T(Py_ssize_t n, const T *a, const T *h, const T *gh, T *out)            \
    {                                                                                                                \
        (void)h;                                                                                                     \
        for (Py_ssize_t i = 0; i < n; i++) /* a product, not a select: 0 * NaN stays NaN as in NumPy */              \
            out[i] = (a[i] > (T)0 ? (T)1 : (T)0) * gh[i];                                                            \
    }                                                                                                                \
    MULTIVERSION static void identity_backward_##T(Py_ssize_t n, const T *a, const T *h, const T *gh, T *out)        \
    {                                                                                                                \
        (void)a;                                                                                                     \
        (void)h;                                                                                                     \
        for (Py_ssize_t i = 0; i < n; i++)                                                                           \
            out[i] = (T)1 * gh[i];                                                                                   \
    }
BACKWARD_BODY(float)
BACKWARD_BODY(double)

/* backward(kind, a, h, grad_h, out) with kind 0 tanh, 1 logistic, 2 relu, 3 identity. */
static PyObject *py_backward(PyObject *self, PyObject *args)
{
    if (PyTuple_GET_SIZE(args) != 5) {
        PyErr_SetString(PyExc_TypeError, "backward(kind, a, h, grad_h, out)");
        return NULL;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(args, 0));
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    if (kind < 0 || kind > 3) {
        PyErr_SetString(PyExc_ValueError, "kind must be 0 (tanh), 1 (logistic), 2 (relu) or 3 (identity)");
        return NULL;
    }
    PyObject *arrays = PyTuple_GetSlice(args, 1, 5);
    if (arrays == NULL)
        return NULL;
    /* All four must be writable for parse(); the training loop's arrays are. */
    Operands op;
    int failed = parse(arrays, 4, 0, &op);
    Py_DECREF(arrays);
    if (failed < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (op.is_double) {
        void (*f[4])(Py_ssize_t, const double *, const double *, const double *, double *) = {
            tanh_backward_double, logistic_backward_double, relu_backward_double, identity_backward_double};
        f[kind](op.n, BUF(double, 0), BUF(double, 1), BUF(double, 2), BUF(double, 3));
    } else {
        void (*f[4])(Py_ssize_t, const float *, const float *, const float *, float *) = {
            tanh_backward_float, logistic_backward_float, relu_backward_float, identity_backward_float};
        f[kind](op.n, BUF(float, 0), BUF(float, 1), BUF(float, 2), BUF(float, 3));
    }
    Py_END_ALLOW_THREADS
    release(&op);
    Py_RETURN_NONE;
}

/* The buffers of a gather: the source (C-contiguous), the row indices and the (writable) output; -1 with an
 * exception set, and nothing held, when one cannot be had. */
static int gather_buffers(PyObject *src_obj, PyObject *rows_obj, PyObject *out_obj, Py_buffer *src, Py_buffer *rows,
                          Py_buffer *out)
{
    if (PyObject_GetBuffer(src_obj, src, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0)
        return -1;
    if (PyObject_GetBuffer(rows_obj, rows, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(src);
        return -1;
    }
    if (PyObject_GetBuffer(out_obj, out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0) {
        PyBuffer_Release(src);
        PyBuffer_Release(rows);
        return -1;
    }
    return 0;
}

static void release_gather(Py_buffer *src, Py_buffer *rows, Py_buffer *out)
{
    PyBuffer_Release(src);
    PyBuffer_Release(rows);
    PyBuffer_Release(out);
}

/* Row indices for a gather from n_rows rows: -1 with an IndexError set when one is out of bounds, 1 when one is
 * negative (counted from the end), 0 otherwise. */
static int check_rows(const int64_t *idx, Py_ssize_t n, Py_ssize_t n_rows)
{
    int negative = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (idx[i] < -n_rows || idx[i] >= n_rows) {
            PyErr_Format(PyExc_IndexError, "row index %lld is out of bounds for %zd rows", (long long)idx[i], n_rows);
            return -1;
        }
        negative |= idx[i] < 0;
    }
    return negative;
}

/* What a gather returns when check_rows says no: NULL with its IndexError set, or NotImplemented for an index counted
 * from the end, as NumPy counts them (rare, so left to NumPy). */
static PyObject *refused(int negative)
{
    return negative < 0 ? NULL : Py_NewRef(Py_NotImplemented);
}

/* take_rows(X, rows, out): out[i] = X[rows[i]] for a C-contiguous 2-d X, int64 row indices and an out of
 * len(rows) rows like X's; returns NotImplemented, copying nothing, when an index is negative. The same bytes as
 * np.take(X, rows, axis=0, out=out), faster on a data set larger than the caches: the rows a few places ahead are
 * prefetched while a row is copied, so that several rows' memory latencies overlap instead of adding up. A large
 * batch may be streamed out (see the store policy above). */
#define PREFETCH_AHEAD 8

static void copy_rows(const char *src, const int64_t *idx, Py_ssize_t n, Py_ssize_t row_bytes, char *dst,
                      int streamed)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n) {
            const char *ahead = src + idx[i + PREFETCH_AHEAD] * row_bytes;
            for (Py_ssize_t b = 0; b < row_bytes; b += 64)
                PREFETCH(ahead + b);
        }
        if (streamed)
            stream_bytes(dst + i * row_bytes, src + idx[i] * row_bytes, row_bytes);
        else
            memcpy(dst + i * row_bytes, src + idx[i] * row_bytes, (size_t)row_bytes);
    }
    if (streamed)
        STREAM_FENCE();
}

static PyObject *py_take_rows(PyObject *self, PyObject *args)
{
    PyObject *X_obj, *rows_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OOO", &X_obj, &rows_obj, &out_obj))
        return NULL;
    Py_buffer X, rows, out;
    if (gather_buffers(X_obj, rows_obj, out_obj, &X, &rows, &out) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n_rows = X.ndim == 2 ? X.shape[0] : 0, row_bytes = X.ndim == 2 ? X.shape[1] * X.itemsize : 0;
    Py_ssize_t n = rows.itemsize == 8 ? rows.len / 8 : -1;
    if (X.ndim != 2 || out.ndim != 2 || n < 0 || out.shape[0] != n || out.shape[1] * out.itemsize != row_bytes ||
        strcmp(X.format, out.format) != 0) {
        PyErr_SetString(PyExc_TypeError, "take_rows needs a 2-d X, 64-bit row indices and an out of matching rows");
        goto done;
    }
    const int64_t *idx = (const int64_t *)rows.buf;
    int negative = check_rows(idx, n, n_rows);
    if (negative) {
        result = refused(negative);
        goto done;
    }
    UNDER_STORE_POLICY(&gather_policy, n * row_bytes,
                       copy_rows((const char *)X.buf, idx, n, row_bytes, (char *)out.buf, streamed));
    result = Py_NewRef(Py_None);
done:
    release_gather(&X, &rows, &out);
    return result;
}

/* take_scaled_rows(raw, rows, out, offset, scale): out[i] = (raw[rows[i]] - offset) / scale for a C-contiguous 2-d
 * uint8 raw and a float32 or float64 out of len(rows) rows of as many columns: the bytes become floats while they
 * are gathered. Each element gets the same two operations, in out's precision, as Scaling's in-place
 * (X - offset) / scale on the converted array, so the numbers are identical. NotImplemented, copying nothing,
 * when an index is negative. */
#define SCALED_ROWS(T)                                                                                               \
    static void scaled_rows_##T(const uint8_t *restrict src, const int64_t *restrict idx, Py_ssize_t n,              \
                                Py_ssize_t d, T *restrict dst, T offset, T scale, int streamed)                      \
    {                                                                                                                \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                         \
            if (i + PREFETCH_AHEAD < n) {                                                                            \
                const uint8_t *ahead = src + idx[i + PREFETCH_AHEAD] * d;                                            \
                for (Py_ssize_t b = 0; b < d; b += 64)                                                               \
                    PREFETCH(ahead + b);                                                                             \
            }                                                                                                        \
            const uint8_t *restrict row = src + idx[i] * d;                                                          \
            T *restrict to = dst + i * d;                                                                            \
            if (!streamed) {                                                                                         \
                for (Py_ssize_t j = 0; j < d; j++)                                                                   \
                    to[j] = ((T)row[j] - offset) / scale;                                                            \
                continue;                                                                                            \
            }                                                                                                        \
            for (Py_ssize_t start = 0; start < d; start += BLOCK) {                                                  \
                Py_ssize_t len = d - start < BLOCK ? d - start : BLOCK;                                              \
                T block[BLOCK];                                                                                      \
                for (Py_ssize_t j = 0; j < len; j++)                                                                 \
                    block[j] = ((T)row[start + j] - offset) / scale;                                                 \
                stream_##T(to + start, block, len);                                                                  \
            }                                                                                                        \
        }                                                                                                            \
        if (streamed)                                                                                                \
            STREAM_FENCE();                                                                                          \
    }
MULTIVERSION SCALED_ROWS(float)
MULTIVERSION SCALED_ROWS(double)

static PyObject *py_take_scaled_rows(PyObject *self, PyObject *args)
{
    PyObject *raw_obj, *rows_obj, *out_obj;
    double offset, scale;
    if (!PyArg_ParseTuple(args, "OOOdd", &raw_obj, &rows_obj, &out_obj, &offset, &scale))
        return NULL;
    Py_buffer raw, rows, out;
    if (gather_buffers(raw_obj, rows_obj, out_obj, &raw, &rows, &out) < 0)
        return NULL;
    PyObject *result = NULL;
    int is_double = strcmp(out.format, "d") == 0;
    Py_ssize_t n_rows = raw.ndim == 2 ? raw.shape[0] : 0, d = raw.ndim == 2 ? raw.shape[1] : 0;
    Py_ssize_t n = rows.itemsize == 8 ? rows.len / 8 : -1;
    if (raw.ndim != 2 || raw.itemsize != 1 || strcmp(raw.format, "B") != 0 || out.ndim != 2 || n < 0 ||
        out.shape[0] != n || out.shape[1] != d || !(is_double || strcmp(out.format, "f") == 0)) {
        PyErr_SetString(PyExc_TypeError,
                        "take_scaled_rows needs a 2-d uint8 array, 64-bit row indices and a float32 or float64 out "
                        "of matching rows");
        goto done;
    }
    const int64_t *idx = (const int64_t *)rows.buf;
    int negative = check_rows(idx, n, n_rows);
    if (negative) {
        result = refused(negative);
        goto done;
    }
    const uint8_t *src = (const uint8_t *)raw.buf;
    UNDER_STORE_POLICY(&gather_policy, n * d * (is_double ? 8 : 4),
                       if (is_double) scaled_rows_double(src, idx, n, d, (double *)out.buf, offset, scale, streamed);
                       else scaled_rows_float(src, idx, n, d, (float *)out.buf, (float)offset, (float)scale,
                                              streamed));
    result = Py_NewRef(Py_None);
done:
    release_gather(&raw, &rows, &out);
    return result;
}

/* count_correct(y_hat, labels): how many rows i have argmax(y_hat[i]) == labels[i], for a C-contiguous 2-d
 * float32 or float64 y_hat and int64 labels. The argmax is NumPy's: the first maximum, and the first NaN when a
 * row has one. */
#define ARGMAX_COUNT(T)                                                                                              \
    static Py_ssize_t count_correct_##T(const T *restrict y_hat, const int64_t *restrict labels, Py_ssize_t n,       \
                                        Py_ssize_t k)                                                                \
    {                                                                                                                \
        Py_ssize_t correct = 0;                                                                                      \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                         \
            const T *row = y_hat + i * k;                                                                            \
            Py_ssize_t best = 0;                                                                                     \
            T top = row[0];                                                                                          \
            if (top == top)                                                                                          \
                for (Py_ssize_t j = 1; j < k; j++) {                                                                 \
                    T value = row[j];                                                                                \
                    if (!(value <= top)) { /* larger, or NaN: NaN wins, as in NumPy */                               \
                        best = j;                                                                                    \
                        top = value;                                                                                 \
                        if (value != value)                                                                          \
                            break;                                                                                   \
                    }                                                                                                \
                }                                                                                                    \
            correct += best == labels[i];                                                                            \
        }                                                                                                            \
        return correct;                                                                                              \
    }
ARGMAX_COUNT(float)
ARGMAX_COUNT(double)

static PyObject *py_count_correct(PyObject *self, PyObject *args)
{
    PyObject *y_hat_obj, *labels_obj;
    if (!PyArg_ParseTuple(args, "OO", &y_hat_obj, &labels_obj))
        return NULL;
    Py_buffer y_hat, labels;
    if (PyObject_GetBuffer(y_hat_obj, &y_hat, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0)
        return NULL;
    if (PyObject_GetBuffer(labels_obj, &labels, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&y_hat);
        return NULL;
    }
    PyObject *result = NULL;
    int is_double = strcmp(y_hat.format, "d") == 0;
    if (y_hat.ndim != 2 || y_hat.shape[1] < 1 || !(is_double || strcmp(y_hat.format, "f") == 0) ||
        labels.itemsize != 8 || labels.len / 8 != y_hat.shape[0]) {
        PyErr_SetString(PyExc_TypeError, "count_correct needs a 2-d float32 or float64 array with at least one "
                                         "column and one 64-bit label per row");
        goto done;
    }
    Py_ssize_t correct;
    Py_BEGIN_ALLOW_THREADS
    correct = is_double ? count_correct_double((const double *)y_hat.buf, (const int64_t *)labels.buf,
                                               y_hat.shape[0], y_hat.shape[1])
                        : count_correct_float((const float *)y_hat.buf, (const int64_t *)labels.buf,
                                              y_hat.shape[0], y_hat.shape[1]);
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(correct);
done:
    PyBuffer_Release(&y_hat);
    PyBuffer_Release(&labels);
    return result;
}

/* store_policy(setting=None): which stores large writes use, "auto" (the default, see above), "ordinary" or
 * "streaming", and how many large calls of each kind used each: {"setting": ..., "update": (ordinary, streamed),
 * "gather": (ordinary, streamed)}. A setting given is kept until the next. */
static PyObject *py_store_policy(PyObject *self, PyObject *args)
{
    const char *setting = NULL;
    if (!PyArg_ParseTuple(args, "|z", &setting))
        return NULL;
    if (setting != NULL) {
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(setting, store_settings[i]) == 0)
                found = i;
        if (found < 0) {
            PyErr_Format(PyExc_ValueError, "store setting must be 'auto', 'ordinary' or 'streaming'; got '%s'",
                         setting);
            return NULL;
        }
        store_setting = found;
    }
    return Py_BuildValue("{sss(LL)s(LL)}", "setting", store_settings[store_setting], "update",
                         update_policy.calls[0], update_policy.calls[1], "gather", gather_policy.calls[0],
                         gather_policy.calls[1]);
}

static PyMethodDef methods[] = {
    {"take_rows", py_take_rows, METH_VARARGS, "take_rows(X, rows, out): out[i] = X[rows[i]]"},
    {"take_scaled_rows", py_take_scaled_rows, METH_VARARGS,
     "take_scaled_rows(raw, rows, out, offset, scale): out[i] = (raw[rows[i]] - offset) / scale"},
    {"store_policy", py_store_policy, METH_VARARGS,
     "store_policy(setting=None): 'auto', 'ordinary' or 'streaming' stores for large writes, and their counts"},
    {"count_correct", py_count_correct, METH_VARARGS,
     "count_correct(y_hat, labels): the number of rows whose argmax is their label"},
    {"backward", py_backward, METH_VARARGS, "backward(kind, a, h, grad_h, out): out = grad_h * g'(a)"},
    {"sgd", py_sgd, METH_VARARGS, "sgd(theta, grad, eta)"},
    {"momentum", py_momentum, METH_VARARGS, "momentum(theta, grad, u, beta, eta)"},
    {"nag", py_nag, METH_VARARGS, "nag(theta, grad, u, beta, eta)"},
    {"rmsprop", py_rmsprop, METH_VARARGS, "rmsprop(theta, grad, v, beta, 1 - beta, eps, eta)"},
    {"adam", py_adam, METH_VARARGS,
     "adam(theta, grad, m, v, beta1, 1 - beta1, beta2, 1 - beta2, 1 / sqrt(c2), eps, eta / c1)"},
    {"nadam", py_nadam, METH_VARARGS,
     "nadam(theta, grad, m, v, beta1, 1 - beta1, beta2, 1 - beta2, 1 / sqrt(c2), eps, beta1 / c1, "
     "(1 - beta1) / c1, eta)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "Fused optimizer updates (see optimizers.py for the rules).", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
