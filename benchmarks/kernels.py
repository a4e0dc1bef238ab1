"""ffnn's compiled kernels against the NumPy code they replace, on the sizes of 784-128-128-10 training.

Each pair is timed alternately in one process and the median of several repeats is printed, with the speed-up.
Both sides compute the same numbers (the test suite checks it bit for bit). The optimizer steps and the gather are
timed twice: called back to back, and each after the matrix product that, in training, reads what they write on
every BLAS thread; the optimizer steps both with ordinary and with streaming stores (the kernels stream large
writes while ordinary stores are slow, as they are on a virtual machine whose cores sit far apart).

    python benchmarks/kernels.py
    python benchmarks/kernels.py --quick    # a smoke test: fewer calls, a smaller data set
"""

import argparse
import statistics
import sys
import time

import numpy as np

from ffnn import kernels
from ffnn.arrays import staggered_zeros
from ffnn.activations import get_activation
from ffnn.optimizers import get_optimizer

N_PARAMS = 784 * 128 + 128 * 128 + 128 * 10 + 128 + 128 + 10  # 784-128-128-10


CALLS, REPEATS, ROWS = 300, 7, 60_000


def per_call(fn, calls=None, repeats=None, between=None):
    """Median over ``repeats`` of the mean seconds per call of ``fn``, compiled and NumPy alternating.

    ``between``, when given, runs (untimed) before every call: what a training step does between two calls.
    """
    calls, enabled_before = calls or CALLS, kernels.ENABLED
    times = {True: [], False: []}
    for _ in range(repeats or REPEATS):
        for enabled in (True, False):
            kernels.ENABLED = enabled
            fn()
            if between is None:
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                times[enabled].append((time.perf_counter() - start) / calls)
                continue
            total = 0.0
            for _ in range(calls):
                between()
                start = time.perf_counter()
                fn()
                total += time.perf_counter() - start
            times[enabled].append(total / calls)
    kernels.ENABLED = enabled_before
    return statistics.median(times[True]), statistics.median(times[False])


def report(label, compiled, numpy_):
    print(f"  {label:<34} compiled {compiled * 1e6:8.1f} us   NumPy {numpy_ * 1e6:8.1f} us   "
          f"speed-up {numpy_ / compiled:4.1f}x")


def main(argv=None):
    global CALLS, REPEATS, ROWS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and a smaller data set")
    if parser.parse_args(argv).quick:
        CALLS, REPEATS, ROWS = 5, 1, 2_000
    if kernels.compiled is None:
        print("ffnn's C extension is not built here (no C compiler at install): nothing to compare")
        return 0
    rng = np.random.default_rng(0)
    # laid out as in training: each vector starts at its own offset within a page (ffnn.arrays.staggered_zeros)
    theta, grad = staggered_zeros(N_PARAMS, np.float32), staggered_zeros(N_PARAMS, np.float32)
    theta[...] = rng.standard_normal(N_PARAMS)
    grad[...] = rng.standard_normal(N_PARAMS) * 1e-3
    W1 = theta[:784 * 128].reshape(784, 128)  # the first layer's weights, stored as W_1^T
    H, A = rng.standard_normal((64, 784), dtype=np.float32), np.empty((64, 128), np.float32)
    forward = lambda: np.matmul(H, W1, out=A)  # noqa: E731 -- reads the weights on every BLAS thread
    for between, setting in ((None, "called back to back"), (forward, "each after a product that reads W_1")):
        for streamed in (False, True):
            stores = "streaming stores" if streamed else "ordinary stores"
            print(f"optimizer step on {N_PARAMS:,} float32 parameters (one flat vector), {setting}, {stores}:")
            for name in ("sgd", "momentum", "nag", "rmsprop", "adam", "nadam"):
                opt = get_optimizer(name, learning_rate=1e-4)
                kernels.compiled.store_policy("streaming" if streamed else "ordinary")
                report(name, *per_call(lambda: opt.step({"theta": theta}, {"theta": grad}), between=between))
    kernels.compiled.store_policy("auto")

    X = rng.standard_normal((ROWS, 784), dtype=np.float32)
    for between, setting in ((None, "back to back"), ("product", "each batch then multiplied by W_1")):
        print(f"mini-batch gather from a {ROWS:,} x 784 float32 training set (random rows), {setting}:")
        for batch in (64, 256):
            out, product = np.empty((batch, 784), np.float32), np.empty((batch, 128), np.float32)
            batches = [rng.permutation(ROWS)[:batch] for _ in range(64)]
            cycle = iter(range(10 ** 9))
            use = (lambda: np.matmul(out, W1, out=product)) if between else None
            report(f"batch {batch}", *per_call(lambda: kernels.take_rows(X, batches[next(cycle) % 64], out),
                                               between=use))

    print("grad_h * g'(a) for a hidden layer of 128 units:")
    for batch in (64, 256):
        for name in ("tanh", "logistic", "relu"):
            act = get_activation(name)
            a = rng.standard_normal((batch, 128)).astype(np.float32)
            h, grad_h, out = act.g(a), rng.standard_normal((batch, 128)).astype(np.float32), np.empty_like(a)
            report(f"{name}, batch {batch}", *per_call(lambda: act.backward(a, h, grad_h, out), calls=CALLS * 7))
    return 0


if __name__ == "__main__":
    sys.exit(main())
