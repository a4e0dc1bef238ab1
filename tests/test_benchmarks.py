"""Smoke tests of the benchmark scripts (``--quick``): they run end to end and print what they promise. Timings are
printed, never asserted."""

import os
import re
import runpy
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Debian's dataset-fashion-mnist is not installed")
def test_train_speed_quick(capsys, monkeypatch):
    script = os.path.join(ROOT, "benchmarks", "train_speed.py")
    monkeypatch.setattr(sys, "argv", [script, "--quick"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(script, run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "float32 GEMM peak" in out
    assert re.search(r"ffnn kernels \(optimizer updates, batch gather\): (compiled|NumPy)", out)
    for config in ("784-128-128-10 B64 sgd", "784-128-128-10 B64 adam"):
        block = out.split(config + ":")[1].split("\n\n")[0]
        assert re.search(r"ffnn +\d+\.\d{3} \(\d+\.\d{3}-\d+\.\d{3}\) +test acc 0\.\d{4} +predict +[\d,]+ rows/s", block)
        assert re.search(r"sklearn .* ffnn/sklearn = \d+\.\d\d", block)
        assert re.search(r"ffnn: [\d.]+ GFLOP/s = \d+% of the", block)
    assert re.search(r"784-128-128-10 B64 adam +\| \d+\.\d{3} \|", out)


def test_kernels_quick(capsys):
    from ffnn import kernels

    script = os.path.join(ROOT, "benchmarks", "kernels.py")
    module = runpy.run_path(script)
    before = kernels.ENABLED
    assert module["main"](["--quick"]) == 0
    out = capsys.readouterr().out
    if kernels.compiled is None:
        assert "not built" in out
        return
    for label in ("sgd", "momentum", "nag", "rmsprop", "adam", "nadam", "batch 64", "batch 256", "tanh, batch 64",
                  "relu, batch 256"):
        assert re.search(rf"\n  {re.escape(label)} +compiled +[\d.]+ us +NumPy +[\d.]+ us +speed-up +[\d.]+x", out), label
    assert kernels.ENABLED == before  # restored after the comparison


def test_gpu_benchmark_without_a_gpu_says_so(capsys, monkeypatch):
    from ffnn import cuda

    monkeypatch.setattr(cuda, "cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)
    module = runpy.run_path(os.path.join(ROOT, "benchmarks", "gpu.py"))
    assert module["main"](["--quick"]) == 0
    assert "benchmarks/gpu.py needs a CUDA GPU: device 'cuda' needs CuPy" in capsys.readouterr().out


def test_gpu_profile_without_a_gpu_says_so(capsys, monkeypatch):
    from ffnn import cuda

    monkeypatch.setattr(cuda, "cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))  # as running the script puts its folder first
    module = runpy.run_path(os.path.join(ROOT, "benchmarks", "gpu_profile.py"))
    assert module["main"]([]) == 0
    assert "benchmarks/gpu_profile.py needs a CUDA GPU: device 'cuda' needs CuPy" in capsys.readouterr().out
