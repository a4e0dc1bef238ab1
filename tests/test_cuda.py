"""Device 'cuda': its errors, its kernels' source, and training on it.

The tests that take a ``device`` run twice: on an emulated GPU (NumPy standing in for CuPy, see fake_cuda.py),
which always runs and holds captured steps to what a real capture allows, and on a real GPU, skipped without one.
"""

import re
import sys
import types

import numpy as np
import pytest
from sklearn.datasets import load_digits

import fake_cuda
import ffnn
from ffnn import cuda
from ffnn.backend import to_numpy
from ffnn.errors import ConfigError, TrainingDiverged
from ffnn.optimizers import OPTIMIZERS, get_optimizer
from ffnn.training import Trainer


def _real_gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


REAL_GPU = False  # set by the device fixture


def close(actual, expected, rtol=1e-9, atol=1e-11):
    """Device against CPU in float64: to 1e-9 on the emulated GPU, whose products are NumPy's, and 100 times looser
    on a real one, whose products add up in another order."""
    scale = 100 if REAL_GPU else 1
    np.testing.assert_allclose(actual, expected, rtol=rtol * scale, atol=atol * scale)


def same_accuracy(ours, theirs, n):
    """Equal on the emulated GPU; on a real one, a near tie may fall the other way for one example."""
    assert np.allclose(ours, theirs, rtol=0, atol=1.5 / n if REAL_GPU else 0)


@pytest.fixture(params=["emulated", "cuda"])
def device(request, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REAL_GPU", request.param == "cuda")
    monkeypatch.setattr(cuda, "STEPS_PER_GRAPH", 4)  # the small data sets here have 9 or 18 full batches an epoch
    if request.param == "emulated":  # running the kernels' own source where a C++ compiler can build it
        fake_cuda.install(monkeypatch, "host" if fake_cuda.host_library() is not None else "numpy")
    elif not _real_gpu():
        pytest.skip("no CUDA GPU here")
    return "cuda"


@pytest.fixture(autouse=True)
def fresh_module(monkeypatch):
    monkeypatch.setattr(cuda, "cupy", None)  # each test loads (or fakes) CuPy itself


def digits(n=600):
    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16).astype(np.float32), y[:n]


# -- without a GPU -------------------------------------------------------------------------------------------------

def test_without_cupy_the_cuda_device_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ConfigError) as info:
        ffnn.Network([3, 2], device="cuda")
    message = str(info.value)
    assert "\n" not in message and "pip install 'ffnn[gpu]'" in message and "device 'cpu'" in message


@pytest.mark.parametrize("count", [RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient"),
                                   0])
def test_without_a_usable_gpu_the_cuda_device_says_why_in_one_line(monkeypatch, count):
    def device_count():
        if isinstance(count, Exception):
            raise count
        return count
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=device_count)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(ConfigError) as info:
        ffnn.Network([3, 2], device="cuda")
    message = str(info.value)
    assert "\n" not in message and "device 'cpu'" in message
    assert ("insufficient" in message) if count else ("no GPU" in message)
    assert cuda.cupy is None


def test_cli_device_cuda_without_a_gpu_is_one_error_line(capsys, tmp_path, monkeypatch):
    if _real_gpu():
        pytest.skip("this machine has a GPU")
    from ffnn import cli
    code = cli.main(["train", "-d", "iris", "-e", "1", "-q", "--device", "cuda", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "device 'cuda'" in err and "Traceback" not in err


# -- the kernels' source -------------------------------------------------------------------------------------------

def test_the_kernels_compile_and_define_every_kernel_the_code_launches():
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    try:
        oldest = max(70, min(nvrtc.getSupportedArchs()))  # Volta, or 75 on CUDA 13, which dropped it
        program = nvrtc.createProgram(cuda.SOURCE, "ffnn.cu", [], [])
        nvrtc.compileProgram(program, [f"--gpu-architecture=compute_{oldest}", *cuda.OPTIONS])
    except Exception as exc:  # no NVRTC library, or a compile error (which the log shows)
        log = nvrtc.getProgramLog(program) if "program" in locals() else ""
        if "error" in log:
            pytest.fail(log)
        pytest.skip(f"NVRTC is not usable here: {exc}")
    ptx = nvrtc.getPTX(program).decode()
    entries = set(re.findall(r"\.entry\s+(\w+)\(", ptx))
    expected = {"add_to"} | {f"{name}_{s}" for name in fake_cuda.KERNELS if name != "add_to" for s in ("f32", "f64")}
    assert expected <= entries, expected - entries


# -- products --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_reads_every_layout_the_network_uses(device, dtype):
    xp = cuda.array_module()
    rng = np.random.default_rng(0)
    cases = []
    for M, K, N in [(5, 7, 3), (1, 4, 6), (6, 1, 2), (4, 5, 1), (64, 784, 128)]:
        for a_order in "CF":
            for b_order in "CF":
                cases.append((rng.standard_normal((M, K)), rng.standard_normal((K, N)), a_order, b_order))
    for A, B, a_order, b_order in cases:
        a = xp.asarray(np.asarray(A, dtype, order=a_order))
        b = xp.asarray(np.asarray(B, dtype, order=b_order))
        a = a if a.flags[f"{a_order}_CONTIGUOUS"] else xp.asarray(np.asfortranarray(to_numpy(a)))
        out = xp.empty((A.shape[0], B.shape[1]), dtype)
        cuda.gemm(a, b, out)
        np.testing.assert_allclose(to_numpy(out), A @ B, rtol=1e-4 if dtype == "float32" else 1e-12, atol=1e-4)
    # a strided view (rows of a wider matrix) and a column slice
    wide = xp.asarray(rng.standard_normal((6, 10)).astype(dtype))
    out = xp.empty((6, 3), dtype)
    cuda.gemm(wide[:, :4], xp.asarray(np.ones((4, 3), dtype)), out)
    np.testing.assert_allclose(to_numpy(out), to_numpy(wide)[:, :4] @ np.ones((4, 3)), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_layer_s_weight_and_bias_gradients_come_from_one_product(device, dtype):
    xp = cuda.array_module()
    rng = np.random.default_rng(1)
    for n, n_in, n_out in [(64, 784, 128), (256, 128, 10), (5, 3, 7), (1, 4, 2), (32, 10, 1)]:
        h, grad_a = rng.standard_normal((n, n_in)), rng.standard_normal((n, n_out))
        # into arrays of their own, and into views of one flat buffer at addresses only 4 or 8 bytes aligned
        flat = xp.full(1 + n_in * n_out + n_out, np.nan, dtype)
        for grad_WT, grad_b in [(xp.full((n_in, n_out), np.nan, dtype), xp.full(n_out, np.nan, dtype)),
                                (flat[1:1 + n_in * n_out].reshape(n_in, n_out), flat[1 + n_in * n_out:])]:
            # as back_propagation calls it: h_{k-1}^T, a transposed view, times grad_ak
            done = cuda.gemm_column_sums(xp.asarray(h.astype(dtype)).T, xp.asarray(grad_a.astype(dtype)), grad_WT,
                                         grad_b)
            if dtype == "float32" or not REAL_GPU:  # float64 is taken where cuBLASLt has an algorithm for it
                assert done == (dtype == "float32")
            if done:
                tolerance = {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}
                np.testing.assert_allclose(to_numpy(grad_WT), h.T @ grad_a, **tolerance)
                np.testing.assert_allclose(to_numpy(grad_b), grad_a.sum(axis=0), **tolerance)


def test_the_one_product_steps_aside_where_it_cannot_be_made(device):
    xp = cuda.array_module()
    h, grad_a = xp.ones((8, 3), np.float32), xp.ones((8, 5), np.float32)
    grad_WT = xp.empty((3, 5), np.float32)
    assert not cuda.gemm_column_sums(h.T, grad_a, grad_WT, xp.empty(4, np.float32))  # of the wrong size
    stream, grad_b = xp.cuda.Stream(non_blocking=True), xp.empty(5, np.float32)
    with stream:  # a shape first met during a capture: cuBLASLt's heuristic cannot be asked then
        stream.begin_capture()
        try:
            done = cuda.gemm_column_sums(h[:7].T, grad_a[:7], grad_WT, grad_b)
        finally:
            stream.end_capture()
    assert not done


# -- training ------------------------------------------------------------------------------------------------------

def train(device, optimizer="adam", epochs=3, batch_size=64, dtype="float32", sizes=(64, 32, 10), seed=0,
          activation="tanh", trainer_kwargs=None, X=None, y=None, **net_kwargs):
    X, y = digits() if X is None else (X, y)
    net = ffnn.Network(list(sizes), activation=activation, dtype=dtype, seed=seed, device=device, **net_kwargs)
    trainer = Trainer(net, get_optimizer(optimizer, 1e-2 if optimizer != "sgd" else 0.1), epochs=epochs,
                      batch_size=batch_size, seed=1, verbose=0, **(trainer_kwargs or {}))
    history = trainer.fit(X.astype(dtype), net.xp.asarray(y))
    return net, trainer, history


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_training_on_the_device_follows_the_cpu(device, optimizer):
    cpu, cpu_trainer, cpu_history = train("cpu", optimizer, dtype="float64")
    gpu, trainer, history = train(device, optimizer, dtype="float64")
    # each epoch's row order, drawn while the GPU ran the epoch before, is the CPU run's, and so is what follows
    assert trainer.rng.bit_generator.state == cpu_trainer.rng.bit_generator.state
    close(to_numpy(gpu.theta), cpu.theta)
    close(history["loss"], cpu_history["loss"])
    same_accuracy(history["accuracy"], cpu_history["accuracy"], 600)
    assert trainer.capture_error is None
    # every batch but the first full one and the first partial one, each captured after it runs
    assert trainer.graph_steps == 3 * -(-600 // 64) - 2
    assert trainer.optimizer.t == 3 * -(-600 // 64)


@pytest.mark.parametrize("optimizer", ["adam", "nag"])
def test_replayed_steps_give_the_weights_of_eager_ones(device, monkeypatch, optimizer):
    replayed, trainer, history = train(device, optimizer, epochs=4, batch_size=32)
    assert trainer.graph_steps > 0
    monkeypatch.setattr(cuda, "GRAPHS", False)
    eager, eager_trainer, eager_history = train(device, optimizer, epochs=4, batch_size=32)
    assert eager_trainer.graph_steps == 0
    np.testing.assert_allclose(to_numpy(replayed.theta), to_numpy(eager.theta), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history["loss"], eager_history["loss"], rtol=1e-6)


@pytest.mark.parametrize("case", ["relu", "logistic", "identity", "weight_decay", "decoupled", "label_smoothing",
                                  "schedule", "regression"])
def test_captured_steps_cover_the_options(device, case):
    kwargs, trainer_kwargs, data = {}, {}, {}
    if case in ("relu", "logistic", "identity"):
        kwargs["activation"] = case
    elif case == "weight_decay":
        trainer_kwargs["weight_decay"] = 1e-3
    elif case == "decoupled":
        trainer_kwargs.update(weight_decay=1e-2, decoupled_weight_decay=True)
    elif case == "label_smoothing":
        trainer_kwargs["label_smoothing"] = 0.1
    elif case == "schedule":
        trainer_kwargs["schedule"] = "exponential"
    elif case == "regression":
        X, y = digits()
        data = {"X": X, "y": np.stack([X.mean(axis=1), X.std(axis=1)], axis=1).astype(np.float64)}
        kwargs.update(output="linear", loss="squared_error", sizes=(64, 16, 2))
    results = []
    for dev in ("cpu", device):
        net, trainer, history = train(dev, "adam", dtype="float64", trainer_kwargs=trainer_kwargs, **data, **kwargs)
        results.append((to_numpy(net.theta), history))
    close(results[1][0], results[0][0])
    close(results[1][1]["loss"], results[0][1]["loss"])
    assert trainer.capture_error is None and trainer.graph_steps > 0
    if case == "schedule":  # each epoch's rate is captured anew
        assert len(set(results[1][1]["learning_rate"])) == 3


@pytest.mark.parametrize("case", ["dropout", "softmax_squared_error", "own_optimizer"])
def test_steps_a_graph_cannot_hold_run_eagerly_and_still_follow_the_cpu(device, case):
    kwargs, optimizer = {}, "adam"
    if case == "dropout":
        kwargs["dropout"] = 0.2
    elif case == "softmax_squared_error":
        kwargs["loss"] = "squared_error"
    else:
        class Plain(type(get_optimizer("sgd"))):
            def update(self, key, theta, grad):
                theta -= grad * self.learning_rate
        optimizer = Plain(learning_rate=0.1)
    results = []
    for dev in ("cpu", device):
        X, y = digits()
        net = ffnn.Network([64, 32, 10], dtype="float64", seed=0, device=dev, **kwargs)
        opt = optimizer if isinstance(optimizer, str) else type(optimizer)(learning_rate=0.1)
        trainer = Trainer(net, get_optimizer(opt, 1e-2) if isinstance(opt, str) else opt, epochs=2, batch_size=64,
                          seed=1, verbose=0)
        results.append((to_numpy(net.theta) if trainer.fit(X.astype(np.float64), net.xp.asarray(y)) else None,
                        trainer))
    close(results[1][0], results[0][0])
    assert results[1][1].graph_steps == 0


def test_a_diverging_run_on_the_device_stops_in_the_cpu_run_s_epoch_and_keeps_the_last_finished_one(device):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = X @ rng.normal(size=(5, 2)) * 10  # built to diverge after the first epoch (as in test_training)
    results = []
    for dev in ("cpu", device):
        net = ffnn.Network([5, 16, 2], activation="relu", output="linear", loss="squared_error", dtype="float64",
                           seed=0, device=dev)
        with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as info:
            net.fit(X, y, epochs=50, batch_size=8, optimizer="sgd", learning_rate=0.05, seed=0, verbose=0)
        results.append((int(re.search(r"epoch (\d+)", str(info.value)).group(1)), to_numpy(net.theta)))
    assert results[0][0] == results[1][0] > 1
    close(results[1][1], results[0][1])


def test_evaluate_predict_and_validation_on_the_device_match_the_cpu(device):
    X, y = digits()
    cpu = ffnn.Network([64, 32, 10], dtype="float64", seed=0)
    history_cpu = cpu.fit(X, y, epochs=2, verbose=0, validation_fraction=0.2, seed=3)
    gpu = ffnn.Network([64, 32, 10], dtype="float64", seed=0, device=device)
    history = gpu.fit(X, y, epochs=2, verbose=0, validation_fraction=0.2, seed=3)
    close(history["val_loss"], history_cpu["val_loss"])
    same_accuracy(history["val_accuracy"], history_cpu["val_accuracy"], 60)
    for net in (cpu, gpu):
        assert isinstance(net.predict_proba(X), np.ndarray)
    close(gpu.predict_proba(X, batch_size=100), cpu.predict_proba(X, batch_size=100), atol=1e-12)
    same_accuracy(np.mean(gpu.predict(X) == cpu.predict(X)), 1.0, len(X))
    ours, theirs = gpu.evaluate(X, y, batch_size=128), cpu.evaluate(X, y, batch_size=128)
    same_accuracy(ours["accuracy"], theirs["accuracy"], 600)
    close(ours["loss"], theirs["loss"])


def test_a_model_saved_on_one_device_loads_on_the_other(device, tmp_path):
    gpu, _, _ = train(device, epochs=1)
    gpu.save(tmp_path / "gpu.safetensors")
    on_cpu = ffnn.Network.load(tmp_path / "gpu.safetensors")
    assert isinstance(on_cpu.theta, np.ndarray) and np.array_equal(on_cpu.theta, to_numpy(gpu.theta))
    on_cpu.save(tmp_path / "cpu.safetensors")
    back = ffnn.Network.load(tmp_path / "cpu.safetensors", device=device)
    assert cuda.is_array(back.theta) and np.array_equal(to_numpy(back.theta), on_cpu.theta)
    X, _ = digits()
    np.testing.assert_allclose(back.predict_proba(X), on_cpu.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_the_step_count_lives_on_the_device_too(device):
    _, trainer, _ = train(device, "adam", epochs=2)
    counter = trainer.optimizer.device_t
    assert counter.host == trainer.optimizer.t == 2 * -(-600 // 64)
    assert int(to_numpy(counter.array)[0]) == trainer.optimizer.t


def test_a_float32_step_on_the_device_takes_each_layer_s_gradients_in_one_product(device):
    cuda.array_module()
    cuda._lt(0).plans.clear()
    cpu, _, cpu_history = train("cpu", "adam", epochs=2)
    gpu, trainer, history = train(device, "adam", epochs=2)
    np.testing.assert_allclose(to_numpy(gpu.theta), cpu.theta, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(history["loss"], cpu_history["loss"], rtol=1e-4)
    assert trainer.capture_error is None and trainer.graph_steps > 0
    plans = cuda._lt(0).plans
    assert len(plans) == 2 * 2 and None not in plans.values()  # two layers, each with full and partial batches


def test_accuracy_on_the_device_matches_the_cpu_run_in_float32(device):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    accuracies = []
    for dev in ("cpu", device):
        net = ffnn.Network([64, 64, 10], seed=0, device=dev)
        net.fit(X[:1400], y[:1400], epochs=10, batch_size=32, verbose=0, seed=0)
        accuracies.append(net.evaluate(X[1400:], y[1400:])["accuracy"])
    assert accuracies[0] > 0.85 and abs(accuracies[1] - accuracies[0]) <= 0.01


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 4 epochs, on purpose
@pytest.mark.parametrize("early_stopping", [False, True])
def test_the_estimators_train_on_the_device_as_on_the_cpu(device, early_stopping):
    from ffnn.estimators import FFNNClassifier, FFNNRegressor

    X, y = digits(300)
    X = X.astype(np.float64)
    weights = np.linspace(0.5, 1.5, len(y))
    kwargs = dict(hidden_layer_sizes=(16,), max_iter=4, random_state=0, early_stopping=early_stopping)
    cpu = FFNNClassifier(**kwargs).fit(X, y, sample_weight=weights)
    gpu = FFNNClassifier(device=device, **kwargs).fit(X, y, sample_weight=weights)
    assert gpu.get_params()["device"] == "cuda" and cuda.is_array(gpu.network_.theta)
    close(to_numpy(gpu.network_.theta), cpu.network_.theta, atol=1e-12)
    close(gpu.loss_curve_, cpu.loss_curve_)
    close(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-12)
    targets = np.stack([X.mean(axis=1), X.std(axis=1)], axis=1)
    cpu = FFNNRegressor(**kwargs).fit(X, targets)
    gpu = FFNNRegressor(device=device, **kwargs).fit(X, targets)
    close(gpu.predict(X), cpu.predict(X), atol=1e-12)


def test_an_unknown_device_for_an_estimator_is_a_config_error():
    from ffnn.estimators import FFNNClassifier

    with pytest.raises(ConfigError, match="device must be one of cpu, cuda; got 'tpu'"):
        FFNNClassifier(device="tpu").fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_fitting_epoch_by_epoch_reuses_the_captured_step_and_matches_one_fit(device):
    X, y = digits()
    one, trainer, _ = train(device, "adam", epochs=3)
    net = ffnn.Network([64, 32, 10], seed=0, device=device)
    stepwise = Trainer(net, get_optimizer("adam", 1e-2), epochs=1, batch_size=64, seed=1, verbose=0)
    X_device, y_device = net.xp.asarray(X), net.xp.asarray(y)
    for epochs in (1, 2, 3):
        stepwise.epochs = epochs
        stepwise.fit(X_device, y_device)
    assert stepwise.graph_steps == trainer.graph_steps
    np.testing.assert_allclose(to_numpy(net.theta), to_numpy(one.theta), rtol=1e-6, atol=1e-7)


def test_a_restored_step_count_reaches_the_device(device):
    X, y = digits()
    net = ffnn.Network([64, 32, 10], dtype="float64", seed=0, device=device)
    trainer = Trainer(net, get_optimizer("adam", 1e-2), epochs=1, batch_size=64, seed=1, verbose=0)
    X, y_device = net.xp.asarray(X.astype(np.float64)), net.xp.asarray(y)  # the same device arrays each time:
    # the captured step is kept
    trainer.fit(X, y_device)
    state = trainer.state_dict()
    theta = to_numpy(net.theta).copy()
    trainer.epochs = 2
    trainer.fit(X, y_device)
    after_two = to_numpy(net.theta).copy()
    trainer.load_state_dict(state)  # back to the end of epoch 1: t goes back too
    net.theta[...] = net.xp.asarray(theta)
    trainer.fit(X, y_device)
    np.testing.assert_allclose(to_numpy(net.theta), after_two, rtol=1e-12, atol=1e-14)
    assert trainer.graph_steps == 3 * -(-600 // 64) - 2  # one capture of each step served all three fits


def test_ffnn_train_on_the_device_matches_the_cpu_run(device, tmp_path, capsys):
    import json

    from ffnn import cli

    summaries = []
    for dev in ("cpu", device):
        out = tmp_path / dev
        flags = ["-d", "digits", "-e", "3", "-b", "32", "-nhl", "1", "-sz", "32", "--dtype", "float64", "--seed", "0",
                 "--val-fraction", "0.1", "--output-dir", str(out), "--device", dev]
        assert cli.main(["train", *flags]) == 0, capsys.readouterr().err
        if dev != "cpu":
            assert re.search(r"training: .*, float64, GPU .+ through CuPy .+, steps replayed as CUDA graphs",
                             capsys.readouterr().out)
        (run,) = out.iterdir()
        summaries.append(json.loads((run / "summary.json").read_text()))
        history = (run / "history.csv").read_text()
        assert history.count("\n") == 4
    same_accuracy(summaries[1]["test_accuracy"], summaries[0]["test_accuracy"], 180)
    close(summaries[1]["test_loss"], summaries[0]["test_loss"])


PAIRS = [("softmax", "cross_entropy"), ("softmax", "squared_error"), ("linear", "squared_error")]


@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_on_the_device_match_the_float64_cpu_reference(device, output, loss, activation, dtype):
    rng = np.random.default_rng(7)
    sizes = [6, 9, 7, 4]
    X = rng.normal(size=(11, 6))
    y = rng.integers(0, 4, 11) if output == "softmax" else rng.normal(size=(11, 4))
    reference = ffnn.Network(sizes, activation=activation, output=output, loss=loss, dtype="float64", seed=3)
    net = ffnn.Network(sizes, activation=activation, output=output, loss=loss, dtype=dtype, seed=3, device=device)
    net.theta[...] = net.xp.asarray(reference.theta.astype(dtype))
    grads = {}
    for n, Xn in ((reference, X), (net, net.xp.asarray(X.astype(dtype)))):
        y_hat, cache = n.forward_propagation(Xn)
        labels = n.xp.asarray(y)
        grads[n is net] = ({k: to_numpy(v).copy() for k, v in n.back_propagation(cache, labels).items()},
                           n.loss(cache, labels))
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    for key, ref in grads[False][0].items():
        got = grads[True][0][key]
        assert np.linalg.norm(got - ref) <= tolerance * max(np.linalg.norm(ref), 1e-3), key
    assert grads[True][1] == pytest.approx(grads[False][1], rel=tolerance)


def _host_kernels():
    if fake_cuda.host_library() is None:
        pytest.skip("no C++ compiler to build the kernels for this CPU")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_optimizer_kernels_are_the_cpu_updates_bit_for_bit(monkeypatch, name, dtype):
    _host_kernels()
    fake_cuda.install(monkeypatch, "host")
    xp = cuda.array_module()
    rng = np.random.default_rng(5)
    theta = rng.normal(size=1001).astype(dtype)
    on_cpu, on_device = get_optimizer(name, 3e-3), get_optimizer(name, 3e-3)
    theta_device = xp.asarray(theta.copy())
    for step in range(4):
        grad = rng.normal(size=1001).astype(dtype)
        on_cpu.t += 1
        on_cpu.update("theta", theta, grad)  # the NumPy reference
        on_device.step({"theta": theta_device}, {"theta": xp.asarray(grad)})
        assert np.array_equal(to_numpy(theta_device), theta), step
    for key, value in on_cpu.state.items():
        assert np.array_equal(to_numpy(on_device.state[key]), value), key
    assert ("adam", dtype) in fake_cuda.LAUNCHED or name not in ("adam", "nadam")


KERNEL_CASES = ["batch_rows_labels", "batch_rows_targets", "softmax", "softmax_bias", "ce_grad", "soft_grad", "ce_loss",
                "soft_ce_loss", "se_loss", "se_label_loss", "correct_only", "soft_correct", "forward", "backward"]


@pytest.mark.parametrize("case", KERNEL_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [5, 20, 40])  # rows a warp's lanes take (up to 32 values), and a longer one
def test_the_kernels_source_agrees_with_its_numpy_transcription(case, dtype, k):
    _host_kernels()
    rng = np.random.default_rng(11)
    rows = 13
    a = rng.normal(size=(rows, k)).astype(dtype) * 3
    a[2, 1] = a[2, 3]  # a tie: the first maximum counts
    y_hat = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    labels = rng.integers(0, k, rows)
    targets = rng.dirichlet(np.ones(k), rows).astype(dtype)
    i64, i32, f = np.int64, np.int32, np.dtype(dtype).type
    if case.startswith("batch_rows"):
        X, perm = rng.normal(size=(20, 3)).astype(dtype), rng.permutation(20).astype(i64)
        Y = rng.integers(0, 9, 20) if case.endswith("labels") else rng.normal(size=(20, 2)).astype(dtype)
        words = (Y.shape[1] if Y.ndim == 2 else 1) * Y.itemsize // 4
        name, n, args = "batch_rows", 7 * (3 + words), lambda: [
            X, i64(3), np.zeros((7, 3), dtype), Y, i64(words), np.zeros((7,) + Y.shape[1:], Y.dtype), perm,
            np.array([4], i64), i64(7)]
    elif case == "softmax":
        name, n, args = "softmax", rows, lambda: [a.copy(), a, i32(0), np.zeros_like(a), i64(rows), i64(k)]
    elif case == "softmax_bias":  # a += b first, written back
        b = rng.normal(size=k).astype(dtype)
        name, n, args = "softmax", rows, lambda: [a.copy(), b, i32(1), np.zeros_like(a), i64(rows), i64(k)]
    elif case == "ce_grad":
        name, n, args = "ce_grad", rows * k, lambda: [y_hat, labels, np.zeros_like(a), i64(rows), i64(k), f(0.25)]
    elif case == "soft_grad":
        name, n, args = "soft_grad", rows * k, lambda: [y_hat, targets, np.zeros_like(a), i64(rows * k), f(0.25)]
    elif case == "forward":  # a += b, then h = g(a), for each g; a NaN and large values of both signs too
        b = rng.normal(size=k).astype(dtype)
        a.flat[:4] = [np.nan, 200, -200, 0]
        for kind in range(4):
            host, numpy_ = [(a.copy(), np.zeros_like(a)) for _ in range(2)]
            fake_cuda.HostKernel("forward", dtype).run(a.size, (np.int32(kind), i64(a.size), i64(k), b, *host))
            fake_cuda.Transcribed(fake_cuda.KERNELS["forward"]).run(a.size, (np.int32(kind), i64(a.size), i64(k), b,
                                                                            *numpy_))
            np.testing.assert_array_equal(host[0], numpy_[0])
            np.testing.assert_allclose(host[1], numpy_[1], rtol=1e-6 if dtype == "float32" else 1e-15, atol=0)
            if kind >= 2:  # relu and identity give NumPy's bits; tanh and e^-a may differ by a rounding from NumPy's
                np.testing.assert_array_equal(host[1], numpy_[1])
        return
    elif case != "backward":  # the totals: loss kind, labels or targets, counting or not; the offset moves by 7
        kind = {"ce_loss": 0, "soft_ce_loss": 0, "se_loss": 1, "se_label_loss": 1}.get(case, 2)
        use = case in ("ce_loss", "se_label_loss", "correct_only")
        y = labels if use else targets
        name, n, args = "batch_totals", rows, lambda: [
            i32(kind), a, y_hat, y, y, i32(use), i64(rows), i64(k), np.zeros(1), np.zeros(1, np.uint64),
            i32(case in ("correct_only", "soft_correct", "ce_loss")), np.array([3], i64), i64(7)]
    else:
        h = np.tanh(a)
        results = []
        for kind in range(4):
            for run in (fake_cuda.HostKernel("backward", dtype).run, fake_cuda.Transcribed(fake_cuda.KERNELS[
                    "backward"]).run):
                out = np.zeros_like(a)
                run(a.size, (np.int32(kind), i64(a.size), a, h, y_hat.astype(dtype), out))
                results.append(out)
        for host, numpy_ in zip(results[::2], results[1::2]):
            assert np.array_equal(host, numpy_)
        return
    host_args, numpy_args = args(), args()
    fake_cuda.HostKernel(name, dtype).run(n, host_args)
    fake_cuda.Transcribed(fake_cuda.KERNELS[name]).run(n, numpy_args)
    rtol = 1e-6 if dtype == "float32" else 1e-13
    for host, numpy_ in zip(host_args, numpy_args):
        if isinstance(host, np.ndarray):
            np.testing.assert_allclose(host, numpy_, rtol=rtol, atol=rtol)
    if name == "batch_totals":
        assert host_args[11][0] == 10 and (host_args[8][0] > 0) == (case not in ("correct_only", "soft_correct"))
    if name in ("softmax", "batch_totals") and k <= 32:  # the kernel of a row over lanes, as the host build runs it
        lanes = cuda._lanes(k)
        lane_args = args()
        fake_cuda.HostKernel(f"{name}_lanes", dtype).run(n * lanes, lane_args + [np.int32(lanes)])
        for host, lane in zip(host_args, lane_args):
            if isinstance(host, np.ndarray):
                np.testing.assert_array_equal(host, lane)


@pytest.mark.parametrize("name", ["softmax", "batch_totals"])
def test_the_row_wise_kernels_cover_every_row_with_fewer_threads_than_rows(name):
    _host_kernels()  # as when a batch has more rows than the capped grid has threads
    rng = np.random.default_rng(3)
    rows, k = 13, 5
    a, b = rng.normal(size=(rows, k)), rng.normal(size=k)
    labels = rng.integers(0, k, rows)
    i32, i64 = np.int32, np.int64
    if name == "softmax":
        args = lambda: [a.copy(), b, i32(1), np.zeros_like(a), i64(rows), i64(k)]
    else:
        args = lambda: [i32(0), a, a, labels, a, i32(1), i64(rows), i64(k), np.zeros(1), np.zeros(1, np.uint64),
                        i32(1), np.array([0], i64), i64(rows)]
    one_each, three = args(), args()
    fake_cuda.HostKernel(name, "float64").run(rows, one_each)
    fake_cuda.HostKernel(name, "float64").run(rows, three, threads=3)
    for x, y in zip(one_each, three):
        if isinstance(x, np.ndarray):
            np.testing.assert_allclose(x, y, rtol=1e-15)
    assert np.any(one_each[3] != 0) if name == "softmax" else one_each[11][0] == rows


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_over_a_warp_s_lanes_give_what_one_thread_a_row_gives(device, dtype):
    xp = cuda.array_module()
    rng = np.random.default_rng(5)
    i32, i64 = np.int32, np.int64
    for k in (1, 2, 3, 5, 10, 16, 17, 32):
        rows, W = 37, cuda._lanes(k)
        a = (rng.normal(size=(rows, k)) * 4).astype(dtype)
        a[1, :] = 2  # ties: the first maximum counts
        a[2, k // 2] = np.nan
        a[3, 0] = np.inf
        a[4, k - 1] = -np.inf
        b = rng.normal(size=k).astype(dtype)
        with np.errstate(invalid="ignore"):
            y_hat = np.exp(a - np.max(np.where(np.isnan(a), -np.inf, a), axis=1, keepdims=True))
        targets = rng.dirichlet(np.ones(k), rows).astype(dtype)
        targets[5, :] = targets[5, 0]  # ties among the targets too
        labels = rng.integers(0, k, rows)
        for bias in (0, 1):
            results = []
            for name, n, extra in (("softmax", rows, ()), ("softmax_lanes", rows * W, (i32(W),))):
                args = [xp.asarray(a.copy()), xp.asarray(b), i32(bias), xp.zeros((rows, k), dtype), i64(rows), i64(k)]
                cuda._launch(cuda._kernel(name, dtype), n, tuple(args) + extra)
                results.append([to_numpy(args[0]), to_numpy(args[3])])
            for ours, theirs in zip(*results):
                np.testing.assert_allclose(ours, theirs, rtol=1e-6 if dtype == "float32" else 1e-14, atol=0)
        for first in (0, 5):  # every row, and the rows of finite values (whose loss is finite)
            m = rows - first
            for kind, use_labels in [(kind, use) for kind in (0, 1, 2) for use in (1, 0)]:
                y = xp.asarray(labels[first:] if use_labels else targets[first:])
                results = []
                for name, n, extra in (("batch_totals", m, ()), ("batch_totals_lanes", m * W, (i32(W),))):
                    loss, correct, offset = xp.zeros(1), xp.zeros(1, np.uint64), xp.asarray(np.array([3], i64))
                    args = (i32(kind), xp.asarray(a[first:].copy()), xp.asarray(y_hat[first:].copy()), y, y,
                            i32(use_labels), i64(m), i64(k), loss, correct, i32(1), offset, i64(m))
                    cuda._launch(cuda._kernel(name, dtype), n, args + extra)
                    results.append((float(to_numpy(loss)[0]), int(to_numpy(correct)[0]), int(to_numpy(offset)[0])))
                (loss, correct, offset), (lane_loss, lane_correct, lane_offset) = results
                assert correct == lane_correct and offset == lane_offset == 3 + m, (k, kind, use_labels)
                assert np.isfinite(loss) or first == 0
                np.testing.assert_allclose(lane_loss, loss, rtol=1e-12, err_msg=f"k={k} kind={kind}")


def test_host_data_changed_between_fits_is_what_the_next_fit_uses(device):
    X, y = digits()
    X = X.astype(np.float64)
    runs = []
    for changed in (False, True):
        net = ffnn.Network([64, 32, 10], dtype="float64", seed=0, device=device)
        trainer = Trainer(net, get_optimizer("adam", 1e-2), epochs=1, batch_size=64, seed=1, verbose=0)
        data = X.copy()
        trainer.fit(data, y)
        if changed:
            data[:] = 1 - data  # in place: the same host array, other values
        trainer.epochs = 2
        trainer.fit(data, y)
        runs.append(to_numpy(net.theta))
    assert not np.allclose(runs[0], runs[1])


def test_a_run_on_the_device_resumes_from_its_checkpoint_to_the_uninterrupted_weights(device, tmp_path, capsys):
    from ffnn import cli
    from ffnn.io import load_network

    flags = ["-d", "digits", "-b", "32", "-nhl", "1", "-sz", "16", "--dtype", "float64", "--seed", "0", "-q",
             "--device", device, "-o", "adam"]
    assert cli.main(["train", *flags, "-e", "3", "--output-dir", str(tmp_path / "whole")]) == 0
    assert cli.main(["train", *flags, "-e", "1", "--output-dir", str(tmp_path / "parts")]) == 0
    (run,) = (tmp_path / "parts").iterdir()
    assert cli.main(["train", "--resume", str(run), "-e", "3", "-q"]) == 0, capsys.readouterr().err
    (whole,) = (tmp_path / "whole").iterdir()
    np.testing.assert_allclose(load_network(run / "model.safetensors").theta,
                               load_network(whole / "model.safetensors").theta, rtol=1e-12, atol=1e-14)


def test_views_that_are_not_contiguous_train_and_take_kernel_outputs(device):
    X, y = digits()
    xp = cuda.array_module()
    wide = xp.asarray(np.concatenate([X, X], axis=1))
    results = []
    for inputs in (xp.asarray(X), wide[:, :64]):  # the same rows, contiguous and as a column slice
        net = ffnn.Network([64, 32, 10], seed=0, device=device)
        trainer = Trainer(net, get_optimizer("adam", 1e-2), epochs=2, batch_size=64, seed=1, verbose=0)
        trainer.fit(inputs, xp.asarray(y))
        results.append(to_numpy(net.theta))
    np.testing.assert_array_equal(results[1], results[0])
    a = xp.asarray(np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    out = xp.zeros((4, 6), np.float32).T  # a transposed view
    from ffnn import outputs
    np.testing.assert_allclose(to_numpy(outputs.softmax(a, out=out)), to_numpy(outputs.softmax(a)), rtol=1e-6)
    labels = xp.asarray(np.array([0, 1, 2, 3, 0, 1]))
    grad = xp.zeros((4, 6), np.float32).T
    outputs.grad_softmax_cross_entropy(a, out, labels, out=grad)
    np.testing.assert_allclose(to_numpy(grad), to_numpy(outputs.grad_softmax_cross_entropy(a, out, labels)),
                               rtol=1e-6)
