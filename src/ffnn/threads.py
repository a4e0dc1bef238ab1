"""How many threads the training loop's matrix products use: the BLAS's own number, or one, whichever is faster now.

Several threads usually make ffnn's products faster, but not always on a virtual machine. On a 2-core one,
784-128-128-10 at batch 64 with Adam took 0.37 s per epoch with two BLAS threads and 0.46 s with one for a while,
then 0.68 s with two and still 0.46 s with one, for tens of seconds at a time, as the host moved the two cores
where sharing work between them is slow. So the training loop times blocks of batches (BLOCK_SECONDS each) with the
thread count it uses, now and then runs one block with the other, and switches when the other is faster. After a
try that lost, the next waits until such tries cost at most PROBE_COST of the time (LAST_PROBE blocks at most); it
comes at once when the blocks of the setting in use become faster or slower by a factor CHANGE, as they do when the
machine's phase changes.

The numbers do not depend on the choice. The network's products sum long inner dimensions in chunks (``matmul``),
which gives the same bits on one thread as on several with numpy's OpenBLAS on x86-64 (tested on AVX-512). A
product whose bits still change with the thread count (another BLAS, or another processor's kernels, may split
differently) is found on random data of its shapes the first time it runs on one thread, and from then on runs on
all of them. A run is therefore bit-identical to one with the thread count fixed, and here also (numpy's OpenBLAS
on two threads) to one with ``OPENBLAS_NUM_THREADS=1`` (the tests check both). Beyond the products, nothing in the
training step uses BLAS: the softmax's row sums and the estimators' weighted loss are NumPy reductions, which do
not depend on threads.

This applies to a training loop on the CPU that runs in the main thread (the thread count is the whole process's)
with a BLAS set to more than one thread. ``FFNN_FIXED_THREADS=1`` (any value but 0) turns it off.
"""

import contextlib
import os
import threading
import time

import numpy as np
from threadpoolctl import ThreadpoolController

BLOCK_SECONDS = 0.02  # a timed block: batches until this much time has passed
FIRST_PROBE = 4       # blocks before the other thread count is first tried, and again after a switch
PROBE_COST = 0.005    # after a try that lost, enough blocks that such tries cost at most this fraction of the time,
LAST_PROBE = 256      # but at most this many
CHANGE = 1.2          # the smoothed time per row of the setting in use changing by this factor tries the other
MARGIN = 0.03         # the other count must be this much faster to take over
SMOOTHING = 0.5       # weight of the newest block in the smoothed time per row

INNER = {4: 400, 8: 384}  # by item size: the most terms of an inner dimension one BLAS call of ``matmul`` sums

_controller = None    # threadpoolctl's controller of the loaded BLAS libraries, found once


def matmul(A, B, out, scratch):
    """``out = A @ B`` for 2-D NumPy arrays, the inner dimension summed in equal chunks of at most INNER terms (400
    in float32, 384 in float64), one BLAS call each, added in order; ``scratch`` is a dict of workspaces by shape
    and dtype that the caller keeps.

    OpenBLAS splits a long inner dimension into blocks itself, and not at the same places on one thread as on
    several, so the last bits of, say, the first layer's product over 784 inputs depend on its thread count. A
    chunk short enough not to be split gives the same bits either way, so ThreadChoice can run such products on one
    thread. Each chunk costs one more call and one addition: 2-3% on that product.
    """
    K, most = A.shape[1], chunk_limit(out.dtype)
    if K <= most:
        return np.matmul(A, B, out=out)
    size = -(-K // -(-K // most))
    np.matmul(A[:, :size], B[:size], out=out)
    part = scratch.get((out.shape, out.dtype))
    if part is None:
        part = scratch[out.shape, out.dtype] = np.empty(out.shape, out.dtype)
    for start in range(size, K, size):
        np.matmul(A[:, start:start + size], B[start:start + size], out=part)
        out += part
    return out


def chunk_limit(dtype):
    """The most terms of an inner dimension that one BLAS call of ``matmul`` sums for arrays of ``dtype``."""
    return INNER[np.dtype(dtype).itemsize]


def _blas():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _blas_libraries():
    return _blas().lib_controllers


class ThreadChoice:
    """Chooses, block by block, between the BLAS's thread counts and one thread for one training run's batches.

    ``start_run()`` at the start of each fit, then ``with choice.over(caches): ... choice.batch_done(rows)`` around
    the batches of each epoch, with the workspaces (``Network.new_cache``) whose products it is to switch; it leaves
    the BLAS and the workspaces as it found them. Where there is no choice to make (``enabled`` False), the ``with``
    and ``batch_done`` do nothing.
    """

    def __init__(self, net):
        self.net = net
        self.enabled = False           # set by start_run
        self.counts = []               # each BLAS library's thread count at the start of the run
        self.preferred = False         # one thread is the faster setting (False: the BLAS's own count)
        self.one = False               # the block now running uses one thread
        self.per_row = [None, None]    # smoothed seconds per row: with the BLAS's count, with one thread
        self.usual = [None, None]      # each setting's per-row time when it was last compared with the other
        self.interval = self.countdown = FIRST_PROBE
        self.varies = {}               # (id(out), operands' shapes and strides) -> (out, whether the bits change)
        self.blocks = [0, 0]           # blocks timed with each setting
        self.caches, self.products = [], []  # the epoch's workspaces, and the product function each had
        self.scratch = {}              # matmul's workspaces for the products on one thread
        self._limiter = None           # threadpoolctl's record of the epoch's changes (see __enter__)

    def start_run(self):
        """At the start of a fit: whether there is a choice to make now (the timings carry over from the last fit of
        the same network and batch size)."""
        self.counts = [lib.num_threads for lib in _blas_libraries()] if self.net.xp is np else []
        self.enabled = bool(
            os.environ.get("FFNN_FIXED_THREADS", "0") in ("", "0")
            and threading.current_thread() is threading.main_thread() and any(n > 1 for n in self.counts))

    def over(self, caches):
        """Switch the products of these workspaces in the coming ``with`` block."""
        self.caches = list(caches)
        return self

    def __enter__(self):
        if self.enabled:
            # threadpoolctl's own context around the epoch's changes: OpenBLAS takes limits from one Python thread at
            # a time, and the context hands that role back at its end, so that other threads can set limits again
            self._limiter = _blas().limit(limits=None)
            self._limiter.__enter__()
            self.products = [cache.matmul for cache in self.caches]
            self.start, self.rows, self.warm = time.perf_counter(), 0, False  # the first block warms up: not timed
            self._use(self.preferred)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            try:
                self._set_threads(False)  # whatever a KeyboardInterrupt left half done
                self._use(False)
            finally:
                limiter, self._limiter = self._limiter, None
                limiter.__exit__(None, None, None)
            # let go of the epoch's workspaces; the next epoch looks at its products again
            self.varies.clear()
            self.scratch.clear()
        self.caches, self.products = [], []

    def batch_done(self, rows):
        """Count a finished batch of ``rows`` rows; at the end of a block, time it and pick the next block's
        setting."""
        if not self.enabled:
            return
        self.rows += rows
        now = time.perf_counter()
        if now - self.start < BLOCK_SECONDS:
            return
        if self.warm:
            self._observe((now - self.start) / self.rows)
        self.warm = True
        self._use(self.preferred if self.countdown > 0 else not self.preferred)
        self.start, self.rows = time.perf_counter(), 0

    def _observe(self, per_row):
        ran, preferred = self.one, self.preferred
        self.blocks[ran] += 1
        if ran != preferred:  # a try of the other setting
            self.per_row[ran] = per_row
            if per_row < self.per_row[preferred] * (1 - MARGIN):
                self.preferred, self.interval = ran, FIRST_PROBE
            else:  # the next try waits until tries cost at most PROBE_COST of the time, as far as they lose
                lost = per_row / self.per_row[preferred] - 1
                self.interval = min(max(FIRST_PROBE, int(lost / PROBE_COST)), LAST_PROBE)
            self.usual[self.preferred] = self.per_row[self.preferred]
            self.countdown = self.interval
            return
        old = self.per_row[ran]
        self.per_row[ran] = now = per_row if old is None else old + SMOOTHING * (per_row - old)
        usual = self.usual[ran]
        if usual is None:
            self.usual[ran] = now
        self.countdown -= 1
        if usual is not None and not usual / CHANGE < now < usual * CHANGE:
            self.countdown = 0  # the machine changed: the other setting may be the faster one now

    def _use(self, one):
        if one != self.one:
            self._set_threads(one)
        self.one = one
        for cache, product in zip(self.caches, self.products):
            cache.matmul = self.matmul if one else product

    def _set_threads(self, one):
        for lib, threads in zip(_blas_libraries(), self.counts):
            lib.set_num_threads(1 if one else threads)

    def matmul(self, A, B, out):
        """The product on one thread (``matmul``, which gives the same bits as the workspace's own product), or on
        all of them for a product whose bits depend on it."""
        # by output and operand shapes: workspaces of different batch sizes share their gradients' outputs
        key = (id(out), A.shape, A.strides, B.shape, B.strides)
        known = self.varies.get(key)
        if known is None or known[0] is not out:
            known = self.varies[key] = (out, self._bits_vary(A, B, out))
        if not known[1]:
            return matmul(A, B, out, self.scratch)
        with self._all_threads():
            return matmul(A, B, out, self.scratch)

    @contextlib.contextmanager
    def _all_threads(self):
        # within a one-thread block: the BLAS's own count for one call
        self._set_threads(False)
        try:
            yield
        finally:
            self._set_threads(True)

    def _bits_vary(self, A, B, out):
        # The same product on random numbers laid out as A, B and out are, with one thread and with all of them.
        rng = np.random.default_rng(0)
        A_, B_, one, many = (np.empty_like(x) for x in (A, B, out, out))
        A_[...] = rng.standard_normal(A.shape)
        B_[...] = rng.standard_normal(B.shape)
        matmul(A_, B_, one, self.scratch)
        with self._all_threads():
            matmul(A_, B_, many, self.scratch)
        return not np.array_equal(one, many)
