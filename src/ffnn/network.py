"""The feedforward network of the lecture: forward_propagation and back_propagation.

Lecture notation, for one example as a column vector and k = 1..L:

    a_k   = b_k + W_k h_{k-1}          pre-activation (h_0 = x)
    h_k   = g(a_k)                     hidden activation, k < L
    y_hat = O(a_L)                     output

    grad_aL    = d loss / d a_L        (softmax + cross-entropy: -(e(l) - y_hat))
    grad_Wk    = grad_ak h_{k-1}^T
    grad_bk    = grad_ak
    grad_h{k-1} = W_k^T grad_ak
    grad_a{k-1} = grad_h{k-1} (elementwise) g'(a_{k-1})

Here arrays are batch-major: a batch of N examples is a matrix whose rows are the examples. W_k keeps the
lecture's shape (n_k, n_{k-1}), so for the row-stacked batch H_{k-1} of shape (N, n_{k-1}):

    A_k = H_{k-1} W_k^T + b_k                      (N, n_k)
    grad_Wk = grad_Ak^T H_{k-1}                    (n_k, n_{k-1}): the lecture's outer products summed over the batch
    grad_bk = sum over rows of grad_Ak             (n_k,)
    grad_H{k-1} = grad_Ak W_k                      (N, n_{k-1})

The loss is averaged over the examples of the batch, and every gradient is of that mean.

All parameters live in one flat vector ``theta`` laid out as W_1..W_L, b_1..b_L; ``params`` maps the names
"W1".."WL", "b1".."bL" to views into it, so an optimizer can update everything in a few vectorised calls and
weight decay touches the leading weights block only. Each W_k has the lecture's shape (n_k, n_{k-1}) but is stored
column by column (its block of theta is W_k^T, row-major): the batch-major products H W_k^T and H^T grad_A then
run on contiguous operands, which BLAS does 20-25% faster at these sizes.
"""

import functools
import numbers

import numpy as np

from . import cuda, kernels, threads
from .activations import get_activation
from .arrays import ScaledBytes, row_block, staggered_zeros, take_rows
from .backend import get_array_module, to_numpy
from .errors import ConfigError, DataError, positive_int
from .initializers import get_initializer
from .outputs import GRADIENTS, get_output_layer

DTYPES = ("float32", "float64")


class Cache:
    """What forward_propagation computed for one batch, plus the workspaces back_propagation fills.

    ``a[k]`` and ``h[k]`` for k = 1..L have shape (N, n_k); ``h[0]`` is the input batch X; ``y_hat`` is h[L].
    Index 0 of ``a`` is unused so that indices match the lecture. With dropout, ``mask[k]`` holds the scaled
    keep-mask of hidden layer k and ``passed[k] = h[k] * mask[k]`` is what layer k+1 receives; without it
    ``passed[k]`` is ``h[k]`` itself.
    """

    def __init__(self, xp, sizes, batch, dtype, matmul):
        L = len(sizes) - 1
        self.batch = batch
        self.matmul = matmul  # the products' function for this batch size (Network.new_cache chooses it)
        self.a = [None] + [xp.empty((batch, n), dtype) for n in sizes[1:]]
        self.h = [None] + [xp.empty((batch, n), dtype) for n in sizes[1:]]
        self.grad_a = [None] + [xp.empty((batch, n), dtype) for n in sizes[1:]]
        self.grad_h = [None] + [xp.empty((batch, n), dtype) for n in sizes[1:L]] + [None]
        self.passed = list(self.h)
        self.ones = xp.ones((1, batch), dtype)  # sums over the batch as products: ones @ grad_A
        self.mask = [None] * (L + 1)
        self.masked = [None] * (L + 1)
        self._xp, self._dtype, self._sizes = xp, dtype, sizes
        self.dropout = False

    def dropout_buffers(self):
        """Allocate the mask and masked-output arrays on first use."""
        if self.mask[1] is None and len(self._sizes) > 2:
            for k, n in enumerate(self._sizes[1:-1], 1):
                self.mask[k] = self._xp.empty((self.batch, n), self._dtype)
                self.masked[k] = self._xp.empty((self.batch, n), self._dtype)
        return self.mask

    @property
    def y_hat(self):
        return self.h[-1]


class Network:
    """A feedforward network with L = len(sizes) - 1 layers of weights.

    Parameters
    ----------
    sizes : list of int
        ``[n, n_1, ..., n_{L-1}, k]``: input features, hidden widths (possibly none), outputs.
    activation : str
        Hidden activation g: 'logistic' (or 'sigmoid'), 'tanh', 'identity' (or 'linear'), 'relu'.
    output, loss : str
        Output function O ('softmax' or 'linear') and loss ('cross_entropy' or 'squared_error'); valid pairs are
        softmax + cross_entropy, softmax + squared_error and linear + squared_error.
    init : str
        'random' (N(0, 0.01^2)), 'xavier' or 'he'. Biases start at zero.
    dtype : str
        'float32' (default) or 'float64'.
    seed : int or numpy.random.Generator, optional
        Randomness of the initial weights.
    device : str
        'cpu' (NumPy) or 'cuda' (CuPy).
    dropout : float
        Probability of dropping each hidden unit during training (inverted dropout: kept units are scaled by
        1 / (1 - dropout), so nothing changes at evaluation). 0 disables it.
    """

    def __init__(self, sizes, activation="tanh", output="softmax", loss="cross_entropy", init="xavier",
                 dtype="float32", seed=None, device="cpu", dropout=0.0):
        self.sizes = _check_sizes(sizes)
        self.activation = get_activation(activation)
        self.output_layer = get_output_layer(output, loss)
        self.init = str(init).lower()
        initializer = get_initializer(init)
        try:
            dtype_name = np.dtype(dtype).name
        except TypeError:
            dtype_name = str(dtype)
        if dtype_name not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        self.dtype = np.dtype(dtype_name)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ConfigError(f"dropout must be a probability in [0, 1); got {dropout!r}")
        self.dropout = float(dropout)
        if self.dropout and len(self.sizes) < 3:
            raise ConfigError(f"dropout drops hidden units, and this network ({'-'.join(map(str, self.sizes))}) has "
                              "none; use dropout 0 or add a hidden layer")
        self.device = str(device).lower() if isinstance(device, str) else device
        self.L = len(self.sizes) - 1
        self.n_weights = sum(n_out * n_in for n_in, n_out in zip(self.sizes, self.sizes[1:]))
        self.n_params = self.n_weights + sum(self.sizes[1:])
        xp = get_array_module(self.device)
        zeros = staggered_zeros if xp is np else xp.zeros  # see arrays.staggered_zeros
        self._bind(zeros(self.n_params, self.dtype))
        try:
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        except (TypeError, ValueError):
            raise ConfigError(f"seed must be a non-negative integer or a numpy.random.Generator; got {seed!r}") \
                from None
        for k in range(1, self.L + 1):
            self.W[k][...] = self.xp.asarray(initializer(self.sizes[k - 1], self.sizes[k], rng))
        self.metadata = {}  # class names, feature scaling, ... saved with the model

    def _bind(self, theta):
        """Make ``theta`` this network's parameters: the array module of its device, and every view into it."""
        self.xp = get_array_module(self.device)
        self.theta = theta
        self.params = self.views(self.theta)
        # 1-indexed like the lecture: W[k], b[k] for k = 1..L (views into theta); WT[k] = W[k]^T, contiguous.
        self.W = [None] + [self.params[f"W{k}"] for k in range(1, self.L + 1)]
        self.WT = [None] + [W.T for W in self.W[1:]]
        self.b = [None] + [self.params[f"b{k}"] for k in range(1, self.L + 1)]
        self._grad_views = None  # (flat gradient buffer, its named views), reused while the buffer is

    def __getstate__(self):
        # pickle and deepcopy keep theta alone: the module and the views into it are made again on arrival
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("xp", "params", "W", "WT", "b", "_grad_views")}
        return state

    def __setstate__(self, state):
        theta = state.pop("theta")
        self.__dict__.update(state)
        self._bind(theta)

    # -- the parameter layout ----------------------------------------------------------------------------
    def views(self, flat):
        """Name -> view into a flat vector laid out like ``theta`` (W1..WL column-major, then b1..bL)."""
        out, offset = {}, 0
        pairs = list(zip(self.sizes, self.sizes[1:]))
        for k, (n_in, n_out) in enumerate(pairs, 1):
            out[f"W{k}"] = flat[offset:offset + n_out * n_in].reshape(n_in, n_out).T
            offset += n_out * n_in
        for k, (_, n_out) in enumerate(pairs, 1):
            out[f"b{k}"] = flat[offset:offset + n_out]
            offset += n_out
        return out

    @property
    def config(self):
        """The arguments that rebuild this architecture (saved in model files)."""
        return {"sizes": list(self.sizes), "activation": self.activation.name,
                "output": self.output_layer.output, "loss": self.output_layer.loss_name,
                "init": self.init, "dtype": self.dtype.name, "dropout": self.dropout}

    def new_cache(self, batch):
        """Preallocated arrays for a batch of ``batch`` examples (reused across batches by the training loop)."""
        return Cache(self.xp, self.sizes, batch, self.dtype, self._products(batch))

    def _products(self, batch):
        # On a GPU, cuBLAS called so that a CUDA graph can capture the products (see ffnn.cuda). On the CPU, where an
        # inner dimension (a layer's width, the batch) is long enough for the BLAS to split it, threads.matmul sums
        # it in chunks, so that the bits do not depend on the BLAS's thread count (see ffnn.threads).
        if self.xp is not np:
            return cuda.gemm
        if max(*self.sizes, batch) <= threads.chunk_limit(self.dtype):
            return np.matmul
        return functools.partial(threads.matmul, scratch={})

    def __repr__(self):
        c = self.config
        extra = (f", init={c['init']!r}" if c["init"] != "xavier" else "") + \
            (f", dropout={c['dropout']:g}" if c["dropout"] else "") + \
            (f", device={self.device!r}" if self.device != "cpu" else "")
        return (f"Network({c['sizes']}, activation={c['activation']!r}, output={c['output']!r}, "
                f"loss={c['loss']!r}, dtype={c['dtype']!r}{extra})")

    # -- the lecture's two algorithms -------------------------------------------------------------------
    def forward_propagation(self, X, cache=None, rng=None):
        """Compute every a_k, h_k and y_hat for a batch.

        Parameters
        ----------
        X : array, shape (N, n)
        cache : Cache, optional
            Workspace from ``new_cache(N)`` to write into; a new one is allocated when omitted.
        rng : numpy.random.Generator, optional
            Training mode: dropout masks are drawn from it (when ``dropout`` > 0). Without it, no dropout.

        Returns
        -------
        y_hat : array, shape (N, k)
        cache : Cache
        """
        if cache is None:
            X = self._check_X(X)
            cache = self.new_cache(X.shape[0])
        a, h, passed, L, matmul = cache.a, cache.h, cache.passed, self.L, cache.matmul
        cache.dropout = bool(self.dropout and rng is not None)
        h[0] = passed[0] = X
        for k in range(1, L + 1):
            matmul(passed[k - 1], self.WT[k], out=a[k])      # a_k = b_k + W_k h_{k-1}
            if k < L:
                self.activation.forward(a[k], self.b[k], out=h[k])  # with b_k added: h_k = g(a_k)
                passed[k] = self._drop(cache, k, rng) if cache.dropout else h[k]
        self.output_layer.forward(a[L], self.b[L], out=h[L])        # with b_L added: y_hat = O(a_L)
        return h[L], cache

    def _drop(self, cache, k, rng):
        # Inverted dropout: keep each unit with probability 1 - p and scale it by 1 / (1 - p).
        mask = cache.dropout_buffers()[k]
        if self.xp is np:
            rng.random(dtype=mask.dtype, out=mask)
        else:  # the same draws as on the CPU, copied to the device
            mask.set(rng.random(mask.shape, dtype=mask.dtype))
        np.greater_equal(mask, self.dropout, out=mask)
        mask *= 1.0 / (1.0 - self.dropout)
        return np.multiply(cache.h[k], mask, out=cache.masked[k])

    def back_propagation(self, cache, y, out=None, check=True):
        """Gradients of the batch-mean loss with respect to every parameter.

        Parameters
        ----------
        cache : Cache
            From ``forward_propagation`` on the same batch.
        y : array
            Integer labels, shape (N,), or targets, shape (N, k).
        out : array, shape (n_params,), optional
            Flat gradient vector to write into; a new one is allocated when omitted.
        check : bool
            Check ``y`` first (labels in range, targets of the right shape); the training loop, whose labels were
            checked once for the whole set, skips it.

        Returns
        -------
        grads : dict
            "W1".."WL", "b1".."bL" -> gradient, same shapes as ``params`` (views into ``out``).
        """
        if check:
            y = self._batch_targets(y, cache.batch)
        if out is None:
            out = self.xp.empty(self.n_params, self.dtype)
        if self._grad_views is None or self._grad_views[0] is not out:  # the training loop passes one buffer
            views = self.views(out)
            # per layer, the views the products write: grad_Wk^T (W_k's column-major block) and grad_bk as a row
            self._grad_views = (out, views, [None] + [(views[f"W{k}"].T, views[f"b{k}"][None])
                                                      for k in range(1, self.L + 1)])
        _, grads, written = self._grad_views
        a, h, grad_a, grad_h, L, matmul = cache.a, cache.h, cache.grad_a, cache.grad_h, self.L, cache.matmul
        self.output_layer.grad_a(a[L], h[L], y, out=grad_a[L])      # grad_aL
        for k in range(L, 0, -1):
            grad_WkT, grad_bk = written[k]
            if not kernels.weight_gradients(cache.passed[k - 1].T, grad_a[k], grad_WkT, grad_bk):  # GPU: at once
                matmul(cache.passed[k - 1].T, grad_a[k], out=grad_WkT)  # grad_Wk = grad_ak h_{k-1}^T, transposed
                matmul(cache.ones, grad_a[k], out=grad_bk)              # grad_bk = grad_ak, summed over rows
            if k > 1:
                matmul(grad_a[k], self.W[k], out=grad_h[k - 1])  # grad_h{k-1} = W_k^T grad_ak
                if cache.dropout:
                    grad_h[k - 1] *= cache.mask[k - 1]              # through h_{k-1} * mask
                # grad_a{k-1} = grad_h{k-1} * g'(a_{k-1})
                self.activation.backward(a[k - 1], h[k - 1], grad_h[k - 1], out=grad_a[k - 1])
        return grads

    def loss(self, cache, y, check=True):
        """The batch-mean loss of a forward pass held in ``cache`` (``check``: as in back_propagation)."""
        if check:
            y = self._batch_targets(y, cache.batch)
        return self.output_layer.loss(cache.a[self.L], cache.y_hat, y)

    def _batch_targets(self, y, n):
        # y checked as fit checks it, on this network's device; an output layer of one's own (the estimators'
        # weighted one, say) knows its own targets
        if self.output_layer.grad_a not in GRADIENTS.values():
            return y
        return self.xp.asarray(self._check_y(y, n))

    # -- using a trained network ------------------------------------------------------------------------
    def predict_proba(self, X, batch_size=1024):
        """y_hat for every row of X, computed in chunks; shape (N, k), as a NumPy array."""
        batch_size = positive_int("batch_size", batch_size)
        X = self._check_X(X, finite=False)  # each chunk is checked as it is used
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        converted = self._chunk_buffer(X, batch_size) if isinstance(X, ScaledBytes) else None
        for start, cache in self._chunks(X.shape[0], batch_size):
            xb = row_block(X, start, start + cache.batch, converted)
            if not isinstance(X, ScaledBytes):  # whose rows are finite by construction
                self._check_finite(xb)
            y_hat, _ = self.forward_propagation(xb, cache)
            out[start:start + cache.batch] = to_numpy(y_hat)
        return out

    def predict(self, X, batch_size=1024):
        """Class indices (argmax of y_hat) for a softmax output; the outputs y_hat for a linear one."""
        y_hat = self.predict_proba(X, batch_size)
        if self.output_layer.output == "softmax":
            return y_hat.argmax(axis=1)
        return y_hat

    def evaluate(self, X, y, batch_size=1024, rows=None):
        """{"loss": mean loss, "accuracy": fraction correct (softmax outputs only)} over X, or over the rows
        ``rows`` (an index array) of X without copying them out."""
        batch_size = positive_int("batch_size", batch_size)
        X = self._check_X(X, finite=False)  # each chunk is checked as it is used
        y = self._check_y(y, X.shape[0])
        n = X.shape[0] if rows is None else len(rows)
        total, correct = 0.0, 0
        gathered = self._chunk_buffer(X, batch_size, n) if rows is not None or isinstance(X, ScaledBytes) else None
        for start, cache in self._chunks(n, batch_size):
            stop = start + cache.batch
            if rows is None:
                xb, yb = row_block(X, start, stop, gathered), y[start:stop]
            else:
                xb, yb = take_rows(X, rows[start:stop], out=gathered[:cache.batch]), y[rows[start:stop]]
            if not isinstance(X, ScaledBytes):  # whose rows are finite by construction
                self._check_finite(xb)
            y_hat, _ = self.forward_propagation(xb, cache)
            yb = self.xp.asarray(yb)
            total += self.loss(cache, yb, check=False) * cache.batch
            if self.output_layer.output == "softmax":
                labels = yb if yb.ndim == 1 else yb.argmax(axis=1)
                correct += kernels.count_correct(y_hat, labels)
        result = {"loss": total / n}
        if self.output_layer.output == "softmax":
            result["accuracy"] = correct / n
        return result

    def fit(self, X, y, **kwargs):
        """Train with mini-batch gradient descent; see :func:`ffnn.training.fit` for the arguments.

        Returns the :class:`ffnn.training.History` of the run.
        """
        from .training import fit
        return fit(self, X, y, **kwargs)

    def save(self, path, metadata=None):
        """Write the network to a safetensors file (atomically); see :mod:`ffnn.io`."""
        from .io import save_network
        save_network(self, path, metadata)

    @classmethod
    def load(cls, path, device="cpu"):
        """Read a network written by :meth:`save`."""
        from .io import load_network
        return load_network(path, device=device)

    def copy_params_from(self, other):
        """Copy another network's parameters (same architecture) into this one."""
        if list(other.sizes) != list(self.sizes):
            raise ConfigError(f"cannot copy the parameters of a {'-'.join(map(str, other.sizes))} network into a "
                              f"{'-'.join(map(str, self.sizes))} one; the sizes must be the same")
        self.theta[...] = self.xp.asarray(to_numpy(other.theta))

    # -- checks and helpers ------------------------------------------------------------------------------
    def _chunks(self, n_rows, batch_size):
        caches = {}
        for start in range(0, n_rows, batch_size):
            n = min(batch_size, n_rows - start)
            if n not in caches:
                caches[n] = self.new_cache(n)
            yield start, caches[n]

    def _chunk_buffer(self, X, batch_size, n=None):
        # Floats for one chunk of rows gathered from X, or converted from a ScaledBytes.
        return self.xp.empty((min(batch_size, X.shape[0] if n is None else n), X.shape[1]), self.dtype)

    def _check_X(self, X, finite=True):
        """X as this network takes it: a 2-D array of its dtype with its number of features, or a ScaledBytes
        (whose rows are always finite), which stays as it is and is converted chunk by chunk."""
        compact = isinstance(X, ScaledBytes) and self.xp is np
        if not compact:  # a ScaledBytes on a GPU: its floats
            X = np.asarray(X) if self.xp is np else self.xp.asarray(np.asarray(X) if isinstance(X, ScaledBytes) else X)
        if X.ndim != 2:
            raise DataError(f"X must be a 2-D array (examples, features); got shape {tuple(X.shape)}")
        if X.shape[1] != self.sizes[0]:
            raise DataError(f"X has {X.shape[1]} features; this network expects {self.sizes[0]}")
        if X.shape[0] == 0:
            raise DataError("X is empty; at least one example is needed")
        if compact:
            return X
        if X.dtype != self.dtype:
            X = X.astype(self.dtype)
        if finite:
            self._check_finite_rows(X)
        return X

    def _check_finite_rows(self, X):
        # in blocks, so that a large training set does not need a boolean copy of itself
        for start in range(0, X.shape[0], 1024):
            self._check_finite(X[start:start + 1024])

    def _check_finite(self, X):
        if not bool(self.xp.isfinite(X).all()):
            raise DataError("X contains NaN or infinite values; only finite numbers are allowed")

    def _check_y(self, y, n):
        y = np.asarray(to_numpy(y))
        k = self.sizes[-1]
        if y.shape[0] != n:
            raise DataError(f"y has {y.shape[0]} rows but X has {n}; they must match")
        if self.output_layer.output == "softmax" and y.ndim == 1:
            if y.dtype.kind == "f":
                if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                    raise DataError("class labels must be integers 0..k-1; got non-integer values")
            elif y.dtype.kind not in "iub":
                raise DataError(f"class labels must be integers 0..{k - 1}; got dtype {y.dtype}")
            y = y.astype(np.int64)
            if y.size and (y.min() < 0 or y.max() >= k):
                raise DataError(f"labels must lie in 0..{k - 1} for {k} outputs; got {y.min()}..{y.max()}")
            return y
        if y.ndim == 1 and k == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != k:
            raise DataError(f"targets must have shape (N,) of labels or (N, {k}); got {tuple(y.shape)}")
        y = y.astype(self.dtype)
        if not np.all(np.isfinite(y)):
            raise DataError("targets contain NaN or infinite values; only finite numbers are allowed")
        if self.output_layer.output == "softmax" and self.output_layer.loss_name == "cross_entropy":
            # the fused gradient y_hat - y is that of -sum_j y_j log y_hat_j only for rows that sum to 1
            sums = y.sum(axis=1, dtype=np.float64)
            bad = (y < 0).any(axis=1) | (np.abs(sums - 1) > 1e-3)
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(f"soft targets for softmax + cross_entropy must be probabilities (non-negative, each "
                                f"row summing to 1); row {i} sums to {sums[i]:.6g}")
        return y


def _check_sizes(sizes):
    try:
        ok = len(sizes) >= 2 and all(int(s) == s and s >= 1 for s in sizes)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"sizes must be a list of at least two positive integers [inputs, hidden..., outputs]; "
                          f"got {sizes!r}")
    return [int(s) for s in sizes]
