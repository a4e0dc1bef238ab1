"""Training speed on Fashion-MNIST: ffnn against PyTorch and scikit-learn, measured side by side.

For each configuration the three libraries train the same network with the same optimizer, batch size and
learning rate; their epochs alternate (ffnn, PyTorch with in-memory tensors, PyTorch with a DataLoader,
scikit-learn) so that machine noise hits all of them alike. Printed per configuration: median and range of the
seconds per epoch, the ratios ffnn/PyTorch and ffnn/scikit-learn (the median over rounds of each round's ratio),
ffnn's achieved GFLOP/s and its fraction of the float32 matrix-product peak measured here, test accuracy after the
same epochs, and predict() throughput. Last, the peak memory of a default ``ffnn train`` run.

    python benchmarks/train_speed.py            # the full table (a few minutes)
    python benchmarks/train_speed.py --quick    # a smoke test on a small subset
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

import ffnn
import ffnn.kernels
from ffnn.arrays import ScaledBytes
from ffnn.training import Trainer
from ffnn.optimizers import get_optimizer

CONFIGS = [  # (sizes, batch, optimizer, learning rate)
    ([784, 128, 128, 10], 32, "sgd", 0.05),
    ([784, 128, 128, 10], 32, "adam", 1e-3),
    ([784, 128, 128, 10], 64, "sgd", 0.05),
    ([784, 128, 128, 10], 64, "adam", 1e-3),
    ([784, 128, 128, 10], 256, "sgd", 0.1),
    ([784, 128, 128, 10], 256, "adam", 1e-3),
    ([784, 512, 512, 10], 256, "adam", 1e-3),
]


def gemm_peak(repeats=5, n=2048):
    """float32 matrix-product GFLOP/s on this machine (numpy's BLAS, all its threads), best of ``repeats``."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    C = np.empty((n, n), np.float32)
    np.matmul(A, B, out=C)
    best = min(_timed(lambda: np.matmul(A, B, out=C)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def blas_threads():
    """The threads of the BLAS numpy uses (OPENBLAS_NUM_THREADS and the like set it), or the CPU count."""
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=os.cpu_count() or 1)


def epoch_flops(sizes, n):
    """Matrix-product work of one epoch: forward, grad_W for every layer, grad_h for layers 2..L."""
    products = [a * b for a, b in zip(sizes, sizes[1:])]
    return 2 * n * (3 * sum(products) - products[0])


def products_alone(sizes, batch, X, repeats=3):
    """Seconds for one epoch of ffnn's matrix products and nothing else: the same calls on the same arrays as its
    forward_propagation and back_propagation make (the network's column-major W_k, its cache and the cache's product
    function, its flat gradient), on the BLAS's own thread count, on consecutive batches of the float array X, best
    of ``repeats``. What an epoch takes beyond this is the rest of ffnn's work; this itself is what numpy's BLAS
    makes of these shapes."""
    net = ffnn.Network(sizes, activation="tanh", init="xavier", seed=0)
    grads = net.views(np.empty(net.n_params, net.dtype))
    rng, caches, L = np.random.default_rng(0), {}, net.L

    def cache(m):  # ordinary numbers in the workspaces, as in training (no NaN or subnormals from np.empty)
        c = net.new_cache(m)
        for a in c.a[1:] + c.h[1:] + c.grad_a[1:] + c.grad_h[1:L]:
            a[...] = rng.uniform(-1, 1, a.shape)
        return c

    def epoch():
        for start in range(0, X.shape[0], batch):
            h0 = X[start:start + batch]
            m = h0.shape[0]
            c = caches.get(m) or caches.setdefault(m, cache(m))
            c.h[0] = h0
            for k in range(1, L + 1):
                c.matmul(c.h[k - 1], net.WT[k], out=c.a[k])
            for k in range(L, 0, -1):
                c.matmul(c.h[k - 1].T, c.grad_a[k], out=grads[f"W{k}"].T)
                c.matmul(c.ones, c.grad_a[k], out=grads[f"b{k}"][None])
                if k > 1:
                    c.matmul(c.grad_a[k], net.W[k], out=c.grad_h[k - 1])

    epoch()
    return min(_timed(epoch) for _ in range(repeats))


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class FFNNRunner:
    name = "ffnn"
    stored = {}  # id of a float array -> the same images as ffnn's loader holds them (bytes), unless --float-inputs

    def __init__(self, sizes, batch, opt, lr, seed):
        self.net = ffnn.Network(sizes, activation="tanh", init="xavier", seed=seed)
        self.trainer = Trainer(self.net, get_optimizer(opt, lr), epochs=1, batch_size=batch, seed=seed,
                               verbose=0)

    def epoch(self, X, y):
        self.trainer.epochs += 0 if self.trainer.epoch == 0 else 1
        self.trainer.fit(self.stored.get(id(X), X), y)

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X) == y))

    def predict(self, X):
        return self.net.predict(self.stored.get(id(X), X))


class TorchRunner:
    def __init__(self, sizes, batch, opt, lr, seed, loader, start=None):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        self.torch, self.model = torch, nn.Sequential(*layers)
        if start is not None:  # ffnn's initial weights, so that test accuracies compare training, not starts
            with torch.no_grad():
                linears = [m for m in self.model if isinstance(m, nn.Linear)]
                for k, layer in enumerate(linears, 1):
                    layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(start.W[k])))
                    layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(start.b[k])))
        self.loss = nn.CrossEntropyLoss()
        self.opt = (torch.optim.SGD(self.model.parameters(), lr=lr) if opt == "sgd"
                    else torch.optim.Adam(self.model.parameters(), lr=lr))
        self.batch, self.loader = batch, loader
        self.name = "torch-loader" if loader else "torch"
        self._data = None

    def _tensors(self, X, y):
        if self._data is None or self._data[0] is not X:
            self._data = (X, self.torch.from_numpy(X), self.torch.from_numpy(y))
        return self._data[1:]

    def _step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.model(xb), yb).backward()
        self.opt.step()

    def epoch(self, X, y):
        Xt, yt = self._tensors(X, y)
        if self.loader:
            from torch.utils.data import DataLoader, TensorDataset
            for xb, yb in DataLoader(TensorDataset(Xt, yt), batch_size=self.batch, shuffle=True):
                self._step(xb, yb)
            return
        perm = self.torch.randperm(Xt.shape[0])
        for i in range(0, Xt.shape[0], self.batch):
            idx = perm[i:i + self.batch]
            self._step(Xt[idx], yt[idx])

    def predict(self, X):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).argmax(1).numpy()

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X) == y))


class SklearnRunner:
    name = "sklearn"

    def __init__(self, sizes, batch, opt, lr, seed):
        from sklearn.neural_network import MLPClassifier

        # Matched settings: no L2 (alpha=0), plain SGD without momentum, or Adam.
        self.model = MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation="tanh", solver=opt, alpha=0.0,
                                   batch_size=batch, learning_rate_init=lr, momentum=0.0,
                                   nesterovs_momentum=False, shuffle=True, random_state=seed)
        self.classes = np.arange(sizes[-1])

    def epoch(self, X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(X, y, classes=self.classes)

    def predict(self, X):
        return self.model.predict(X)

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X) == y))


def cool_down():
    """Let the last library's idle worker threads (OpenMP's, OpenBLAS's) stop spinning before the next one is
    timed; each library keeps its own thread settings while it runs."""
    time.sleep(COOL_DOWN)


COOL_DOWN = 0.5  # seconds, longer than OpenMP's default 200 ms spin before idle threads sleep


def median_range(values):
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def run_config(sizes, batch, opt, lr, X, y, Xt, yt, epochs, peak, libraries):
    runners = [FFNNRunner(sizes, batch, opt, lr, 0)]
    if "torch" in libraries:
        start = runners[0].net
        runners += [TorchRunner(sizes, batch, opt, lr, 0, loader=False, start=start),
                    TorchRunner(sizes, batch, opt, lr, 0, loader=True, start=start)]
    if "sklearn" in libraries:
        runners.append(SklearnRunner(sizes, batch, opt, lr, 0))
    times = {r.name: [] for r in runners}
    for _ in range(epochs):
        for r in runners:  # alternate, so noise hits everyone alike
            times[r.name].append(_timed(lambda: r.epoch(X, y)))
            cool_down()
    pred = {r.name: [] for r in runners}
    for _ in range(5):
        for r in runners:
            r.predict(Xt)  # warm: after a pause, the first call also wakes the library's threads
            pred[r.name].append(_timed(lambda: r.predict(Xt)))
            cool_down()
    med = {k: statistics.median(v) for k, v in times.items()}
    # Ratios are taken round by round, between epochs run seconds apart, and then their median: a slow phase of
    # a shared machine then slows both sides of a ratio, whereas it can tip one library's median alone.
    ratio = {k: statistics.median(f / o for f, o in zip(times["ffnn"], v)) for k, v in times.items()}
    gflops = epoch_flops(sizes, X.shape[0]) / med["ffnn"] / 1e9
    alone = products_alone(sizes, batch, X)
    label = f"{'-'.join(map(str, sizes))} B{batch} {opt}"
    print(f"\n{label}: seconds per epoch, median (min-max) of {epochs}")
    for r in runners:
        cell = "" if r.name == "ffnn" else f"   ffnn/{r.name} = {ratio[r.name]:.2f}"
        print(f"  {r.name:<13} {median_range(times[r.name]):<24} test acc {r.accuracy(Xt, yt):.4f}"
              f"   predict {Xt.shape[0] / statistics.median(pred[r.name]):>10,.0f} rows/s{cell}")
    print(f"  ffnn: {gflops:.1f} GFLOP/s = {gflops / peak:.0%} of the {peak:.0f} GFLOP/s float32 GEMM peak; its "
          f"matrix products alone take {alone:.3f} s per epoch at these shapes ({alone / med['ffnn']:.0%} of its "
          f"epoch, fastest epoch {min(times['ffnn']):.3f} s)")
    pred_ratio = {k: statistics.median(o / f for f, o in zip(pred["ffnn"], v)) for k, v in pred.items()}
    return label, med, ratio, pred_ratio


def peak_rss_of_training(epochs):
    """Peak resident memory of a default ``ffnn train`` run in its own process, and the dataset's size, in MiB.

    The child reports its own high-water mark (VmHWM, Linux): getrusage's figure for children would also count
    the pages this large process shares with a child between fork and exec.
    """
    import subprocess
    import tempfile

    report = ("import sys; from ffnn.cli import main; rc = main(sys.argv[1:]); "
              "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0], "
              "file=sys.stderr); sys.exit(rc)")
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", report, "train", "-q", "-e", str(epochs), "--output-dir", out],
                              check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = int(done.stderr.split()[-1]) / 1024  # kB
    ds = ffnn.datasets.load("fashion_mnist")
    labels = ds.y_train.nbytes + ds.y_test.nbytes
    held = (sum(getattr(ds.inputs(s), "raw", ds.inputs(s)).nbytes for s in ("train", "test")) + labels) / 2 ** 20
    size = (sum(a.nbytes for a in (ds.X_train, ds.X_test)) + labels) / 2 ** 20
    return peak, size, held


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subset, 2 epochs, 2 configs (a smoke test)")
    parser.add_argument("--epochs", type=int, default=7, help="timed epochs per library and config (default 7)")
    parser.add_argument("--config", type=int, nargs="*", help="indices into the config list (default: all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory run of ffnn train")
    parser.add_argument("--float-inputs", action="store_true",
                        help="train ffnn on the float32 arrays too, instead of the images as bytes")
    args = parser.parse_args(argv)

    ds = ffnn.datasets.load("fashion_mnist")
    stored = ds.inputs("train"), ds.inputs("test")  # before the float arrays are built, which then take over
    X, y, Xt, yt = ds.X_train, ds.y_train, ds.X_test, ds.y_test
    configs = CONFIGS if args.config is None else [CONFIGS[i] for i in args.config]
    epochs = args.epochs
    if args.quick:
        X, y, Xt, yt, configs, epochs = X[:3000], y[:3000], Xt[:1000], yt[:1000], CONFIGS[2:4], 2
        stored = [ScaledBytes(s.raw[:n], s.offset, s.scale, s.dtype) for s, n in zip(stored, (3000, 1000))]
        global COOL_DOWN
        COOL_DOWN = 0.05
        print("--quick: a smoke test on a subset; its ratios are no measurement")
    if not args.float_inputs:
        FFNNRunner.stored = {id(X): stored[0], id(Xt): stored[1]}
    libraries = []
    try:
        import torch
        torch.set_num_threads(blas_threads())  # as many threads as ffnn's products get
        libraries.append("torch")
    except ImportError:
        print("PyTorch is not installed (pip install 'ffnn[bench]'): comparing with scikit-learn only")
    libraries.append("sklearn")
    peak = gemm_peak()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}"
          + (f", torch {torch.__version__}" if "torch" in libraries else "")
          + f"; float32 GEMM peak {peak:.0f} GFLOP/s")
    print("inputs: " + ("float32 arrays for every library" if args.float_inputs else
                        "ffnn takes the images as its loader holds them, bytes converted batch by batch; PyTorch and "
                        "scikit-learn take the float32 arrays"))
    print("ffnn kernels (optimizer updates, batch gather): " + (
        "compiled" if ffnn.kernels.ENABLED else "NumPy (the C extension is not built, or FFNN_NO_KERNELS is set)"))
    rows = [run_config(s, b, o, lr, X, y, Xt, yt, epochs, peak, libraries) for s, b, o, lr in configs]
    print("\nsummary (medians): config | ffnn s/epoch | ffnn/torch | ffnn/torch-loader | ffnn/sklearn | "
          "predict ffnn/torch speed-up")
    for label, med, ratio, pred_ratio in rows:
        cells = [f"{med['ffnn']:.3f}"]
        for other in ("torch", "torch-loader", "sklearn"):
            cells.append(f"{ratio[other]:.2f}" if other in ratio else "-")
        cells.append(f"{pred_ratio['torch']:.2f}x" if "torch" in pred_ratio else "-")
        print(f"  {label:<24} | " + " | ".join(cells))
    if not (args.quick or args.no_memory) and sys.platform.startswith("linux"):
        rss, size, held = peak_rss_of_training(epochs=2)
        print(f"\npeak RSS of `ffnn train -e 2`: {rss:.0f} MiB; the data set is {size:.0f} MiB as floats "
              f"({rss - size:+.0f} MiB) and ffnn holds it in {held:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
