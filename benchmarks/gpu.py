"""Training speed on a GPU: ffnn on device 'cuda' against PyTorch, measured side by side.

For each configuration the same network trains on Fashion-MNIST, held on the GPU, with the same optimizer, batch
size and learning rate, one epoch of each contender in turn:

- ffnn, whose training step is captured once as a CUDA graph and replayed (``ffnn graph``);
- ffnn with every step run eagerly (``ffnn eager``, FFNN_NO_GRAPHS);
- PyTorch eager, with its default optimizer (``torch eager``), and with ``fused=True`` for Adam (``torch fused``);
- PyTorch with its whole step (forward, backward, optimizer) captured in a CUDA graph (``torch graph``), each batch
  gathered into the graph's input buffers by ``index_select`` before the replay.

Printed per configuration: the median and range of seconds per epoch (the first epoch, which compiles and
captures, is left out), ffnn's ratio to each PyTorch variant (the median of each round's ratio), and the test
accuracy of ffnn and PyTorch eager after the same epochs. ``--json PATH`` writes every number.

    python benchmarks/gpu.py                        # the full table
    python benchmarks/gpu.py --quick                # a smoke test on a small subset
    python benchmarks/gpu.py --data-dir DIR         # Fashion-MNIST's four IDX files in DIR
"""

import argparse
import json
import statistics
import sys
import time
import traceback

import numpy as np

import ffnn
from ffnn import cuda
from ffnn.errors import FFNNError
from ffnn.optimizers import get_optimizer
from ffnn.training import Trainer

CONFIGS = [  # (sizes, batch, optimizer, learning rate, target seconds per epoch on an H100)
    ([784, 128, 128, 10], 64, "adam", 1e-3, 0.09),
    ([784, 128, 128, 10], 256, "sgd", 0.1, 0.035),
    ([784, 512, 512, 10], 256, "adam", 1e-3, 0.03),
    ([784, 128, 128, 10], 1024, "adam", 1e-3, None),
]


def load(data_dir, quick):
    try:
        ds = ffnn.data.load("fashion_mnist", data_dir=data_dir, download=False)
        data = (ds.X_train, ds.y_train, ds.X_test, ds.y_test, "Fashion-MNIST")
    except FFNNError as exc:
        print(f"Fashion-MNIST not found ({exc}); timing on random data of its shape instead")
        rng = np.random.default_rng(0)
        data = (rng.random((60000, 784), np.float32), rng.integers(0, 10, 60000),
                rng.random((10000, 784), np.float32), rng.integers(0, 10, 10000), "random data")
    if quick:
        data = (data[0][:4096], data[1][:4096], data[2][:1024], data[3][:1024], data[4])
    return data


class FFNN:
    def __init__(self, sizes, batch, optimizer, lr, X, y, graphs=True):
        self.graphs = graphs
        self.net = ffnn.Network(sizes, activation="tanh", seed=0, device="cuda")
        self.X, self.y = self.net.xp.asarray(X), self.net.xp.asarray(y.astype(np.int64))
        self.trainer = Trainer(self.net, get_optimizer(optimizer, lr), epochs=1, batch_size=batch,
                               seed=0, verbose=0)

    def epoch(self):
        cuda.GRAPHS = self.graphs
        try:
            self.trainer.epochs = self.trainer.epoch + 1
            started = time.perf_counter()
            self.trainer.fit(self.X, self.y)
            cuda.cupy.cuda.Device().synchronize()
            return time.perf_counter() - started
        finally:
            cuda.GRAPHS = True

    def accuracy(self, X, y):
        return self.net.evaluate(X, y)["accuracy"]


class Torch:
    def __init__(self, sizes, batch, optimizer, lr, X, y, mode):
        import torch
        self.torch, self.mode, self.batch = torch, mode, batch
        torch.manual_seed(0)
        layers = []
        for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out))
            if k < len(sizes) - 2:
                layers.append(torch.nn.Tanh())
        self.model = torch.nn.Sequential(*layers).cuda()
        self.loss = torch.nn.CrossEntropyLoss()
        kwargs = {"fused": True} if mode == "fused" else {"capturable": True} if mode == "graph" and \
            optimizer == "adam" else {}
        self.opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(self.model.parameters(), lr=lr,
                                                                                  **kwargs)
        self.X = torch.as_tensor(X, device="cuda")
        self.y = torch.as_tensor(y.astype(np.int64), device="cuda")
        self.graph = None

    def _step(self, xb, yb):
        # a captured graph needs its gradient buffers kept; eager steps free them, PyTorch's default and fastest
        self.opt.zero_grad(set_to_none=self.mode != "graph")
        loss = self.loss(self.model(xb), yb)
        loss.backward()
        self.opt.step()

    def _capture(self):
        torch = self.torch
        self.static_x = torch.empty((self.batch, self.X.shape[1]), device="cuda")
        self.static_y = torch.empty((self.batch,), dtype=torch.int64, device="cuda")
        self.static_x.copy_(self.X[:self.batch])
        self.static_y.copy_(self.y[:self.batch])
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up steps on a side stream, as PyTorch's documentation does
            for _ in range(3):
                self._step(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step(self.static_x, self.static_y)

    def epoch(self):
        torch = self.torch
        if self.mode == "graph" and self.graph is None:
            self._capture()
        torch.cuda.synchronize()
        started = time.perf_counter()
        n, B = self.X.shape[0], self.batch
        perm = torch.randperm(n, device="cuda")
        for start in range(0, n, B):
            idx = perm[start:start + B]
            if self.graph is not None and idx.shape[0] == B:
                torch.index_select(self.X, 0, idx, out=self.static_x)
                torch.index_select(self.y, 0, idx, out=self.static_y)
                self.graph.replay()
            else:
                self._step(self.X[idx], self.y[idx])
        torch.cuda.synchronize()
        return time.perf_counter() - started

    def accuracy(self, X, y):
        torch = self.torch
        with torch.no_grad():
            pred = self.model(torch.as_tensor(X, device="cuda")).argmax(dim=1).cpu().numpy()
        return float((pred == y).mean())


def measure(name, sizes, batch, optimizer, lr, target, X, y, X_test, y_test, epochs):
    """Every contender on one configuration, one epoch each in turn; prints and returns the numbers. A contender
    that fails is reported and dropped, and the others go on."""
    makers = {
        "ffnn graph": lambda: FFNN(sizes, batch, optimizer, lr, X, y, graphs=True),
        "ffnn eager": lambda: FFNN(sizes, batch, optimizer, lr, X, y, graphs=False),
        "torch eager": lambda: Torch(sizes, batch, optimizer, lr, X, y, "eager"),
        "torch graph": lambda: Torch(sizes, batch, optimizer, lr, X, y, "graph"),
    }
    if optimizer == "adam":
        makers["torch fused"] = lambda: Torch(sizes, batch, optimizer, lr, X, y, "fused")
    contenders, errors = {}, {}
    for key, make in makers.items():
        try:
            contenders[key] = make()
        except Exception:
            errors[key] = traceback.format_exc()
    times = {k: [] for k in contenders}
    for round_ in range(epochs + 1):
        for key, contender in list(contenders.items()):
            try:
                seconds = contender.epoch()
            except Exception:
                errors[key] = traceback.format_exc()
                del contenders[key], times[key]
                continue
            if round_:
                times[key].append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: statistics.median(a / b for a, b in zip(times["ffnn graph"], v))
              for k, v in times.items() if k.startswith("torch") and "ffnn graph" in times}
    accuracy = {who: contenders[key].accuracy(X_test, y_test)
                for who, key in (("ffnn", "ffnn graph"), ("torch", "torch eager")) if key in contenders}
    print(f"{name}:")
    for key, v in times.items():
        ratio = f"  ffnn graph / {key} = {ratios[key]:.2f}" if key in ratios else ""
        print(f"  {key:<12} {medians[key]:.4f} s/epoch ({min(v):.4f}-{max(v):.4f}){ratio}")
    for key, error in errors.items():
        print(f"  {key} failed:\n{error}")
    print(f"  test accuracy after {epochs + 1} epochs: " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
    if "ffnn graph" in contenders and contenders["ffnn graph"].trainer.capture_error:
        print(f"  ffnn could not capture its step: {contenders['ffnn graph'].trainer.capture_error}")
    if target is not None:
        print(f"  target: at most {target} s/epoch and half of torch graph's time")
    print()
    return {"config": name, "seconds": times, "median": medians, "ratios": ratios, "accuracy": accuracy,
            "target": target, "errors": errors}


def have_gpu(script):
    """Whether device 'cuda' works here; if not, one line saying why ``script`` does nothing."""
    try:
        cuda.array_module()
    except FFNNError as exc:
        print(f"{script} needs a CUDA GPU: {exc}")
        return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per contender (default 6)")
    parser.add_argument("--config", type=int, nargs="*", help="which configurations (1-based), default all")
    parser.add_argument("--data-dir", help="folder with Fashion-MNIST's IDX files")
    parser.add_argument("--quick", action="store_true", help="a smoke test: a small subset, two epochs")
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)
    if not have_gpu("benchmarks/gpu.py"):
        return 0
    import torch

    cupy = cuda.cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    print(f"GPU: {props['name'].decode()}, CuPy {cupy.__version__}, PyTorch {torch.__version__}")
    X, y, X_test, y_test, what = load(args.data_dir, args.quick)
    epochs = 2 if args.quick else args.epochs
    print(f"data: {what}, {X.shape[0]} training rows; {epochs} timed epochs after one untimed\n")
    chosen = [CONFIGS[i - 1] for i in (args.config or range(1, len(CONFIGS) + 1))]
    results = []
    for sizes, batch, optimizer, lr, target in chosen:
        name = f"{'-'.join(map(str, sizes))} B{batch} {optimizer}"
        try:
            results.append(measure(name, sizes, batch, optimizer, lr, target, X, y, X_test, y_test, epochs))
        except Exception:  # one configuration's failure is reported and the others still run
            print(f"{name}: failed\n{traceback.format_exc()}")
            results.append({"config": name, "error": traceback.format_exc()})
        if args.json:  # after every configuration, so that a run cut short keeps what it measured
            with open(args.json, "w") as f:
                json.dump({"gpu": props["name"].decode(), "results": results}, f, indent=1)
    print("| config | ffnn graph | ffnn eager | torch eager | torch fused | torch graph | ffnn / torch graph |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['config']} | failed | | | | | |")
            continue
        m = r["median"]
        cells = [f"{m[k]:.4f}" if k in m else "-" for k in
                 ("ffnn graph", "ffnn eager", "torch eager", "torch fused", "torch graph")]
        ratio = r["ratios"].get("torch graph")
        print(f"| {r['config']} | {' | '.join(cells)} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
