"""Where an epoch of ffnn on device 'cuda' goes: the whole epoch, its captured steps replayed alone, one eager step,
the host's draw of the row order, and (with PyTorch installed) the GPU time of each kernel of a step.

For each configuration of benchmarks/gpu.py (the first three by default), after two untimed epochs:

- ``fit epoch``: one epoch as ``Trainer.fit`` runs it (the median of 5);
- ``replay alone``: the same epoch's graphs launched back to back, wall clock and CUDA events;
- ``eager step``: one step run without a graph (the median of 5 runs of 20 steps, or of the epoch's full batches);
- ``permutation``: ``rng.permutation(n)`` on the host, which the training loop draws while the GPU runs the epoch
  before.

``--kernels`` adds PyTorch's profiler tables (its CUPTI sees CuPy's kernels too) for those eager steps and for one
replayed epoch, sorted by GPU time.

    python benchmarks/gpu_profile.py --data-dir DIR [--config 1 2 3] [--kernels]
"""

import argparse
import statistics
import sys
import time

import gpu as bench
from ffnn import cuda


def timed(stream, fn, reps=5):
    """Median wall-clock and CUDA-event seconds of ``fn``, whose work goes to ``stream``."""
    cp, walls, events = cuda.cupy, [], []
    for _ in range(reps):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        cp.cuda.Device().synchronize()
        began = time.perf_counter()
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        walls.append(time.perf_counter() - began)
        events.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(walls), statistics.median(events)


def profile(config, X, y, kernels):
    sizes, B, optimizer, lr, _ = config
    contender = bench.FFNN(sizes, B, optimizer, lr, X, y)
    for _ in range(2):  # the first epoch captures the steps, the second replays them all
        contender.epoch()
    fit = statistics.median(contender.epoch() for _ in range(5))
    trainer = contender.trainer
    s = trainer._device_run
    full = s.n // B

    steps = min(20, full)
    if s.graph is None or s.graphs is None:
        print(f"{'-'.join(map(str, sizes))} B{B} {optimizer}: the steps were not captured "
              f"({trainer.capture_error or 'FFNN_NO_GRAPHS is set'}); fit epoch {fit * 1e3:.2f} ms")
        return

    def replay():
        with s.stream:
            s.offset.fill(0)
        for _ in range(full // cuda.STEPS_PER_GRAPH):
            s.graphs.launch(s.stream)
        for _ in range(full % cuda.STEPS_PER_GRAPH):
            s.graph.launch(s.stream)
        if s.last_graph is not None:
            s.last_graph.launch(s.stream)

    def eager():
        with s.stream:
            s.offset.fill(0)
            for _ in range(steps):
                trainer._device_step(s, B)

    replay_wall, replay_gpu = timed(s.stream, replay)
    eager_wall, eager_gpu = timed(s.stream, eager)
    began = time.perf_counter()
    for _ in range(10):
        trainer.rng.permutation(s.n)
    permutation = (time.perf_counter() - began) / 10
    print(f"{'-'.join(map(str, sizes))} B{B} {optimizer}: fit epoch {fit * 1e3:.2f} ms; replay alone "
          f"{replay_wall * 1e3:.2f} ms wall, {replay_gpu * 1e3:.2f} ms events ({replay_gpu / s.n_batches * 1e6:.1f} "
          f"us a step); eager step {eager_wall / steps * 1e6:.0f} us wall, {eager_gpu / steps * 1e6:.0f} us events; "
          f"permutation {permutation * 1e3:.2f} ms" +
          (f"; could not capture: {trainer.capture_error}" if trainer.capture_error else ""))
    if kernels:
        from torch.profiler import ProfilerActivity, profile as torch_profile
        for what, fn in ((f"{steps} eager steps", eager), ("one replayed epoch", replay)):
            with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                s.stream.synchronize()
            print(f"\nkernels of {what}:")
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=int, nargs="*", help="which configurations of gpu.py (1-based), "
                                                              "default 1 2 3")
    parser.add_argument("--data-dir", help="folder with Fashion-MNIST's IDX files")
    parser.add_argument("--kernels", action="store_true", help="PyTorch profiler tables of the kernels")
    args = parser.parse_args(argv)
    if not bench.have_gpu("benchmarks/gpu_profile.py"):
        return 0
    X, y, _, _, what = bench.load(args.data_dir, False)
    print(f"data: {what}, {X.shape[0]} training rows")
    for i in args.config or (1, 2, 3):
        profile(bench.CONFIGS[i - 1], X, y, args.kernels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
