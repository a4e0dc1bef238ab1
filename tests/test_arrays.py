import numpy as np
import pytest

import ffnn
from ffnn import kernels
from ffnn.arrays import ScaledBytes, row_block, take_rows
from ffnn.data import Scaling
from ffnn.errors import DataError
from ffnn.training import Trainer
from ffnn.optimizers import get_optimizer

PATHS = [pytest.param(False, id="numpy"), pytest.param(True, id="compiled")]


def _path(enabled, monkeypatch):
    if enabled and kernels.compiled is None:
        pytest.skip("ffnn was built without its C extension")
    monkeypatch.setattr(kernels, "ENABLED", enabled)


def _bytes_and_floats(n=300, d=37, offset=33.3, scale=7.1, dtype="float32", seed=0):
    raw = np.random.default_rng(seed).integers(0, 256, (n, d), dtype=np.uint8)
    floats = Scaling(offset=offset, scale=scale).transform(raw.astype(dtype))  # in place on the float copy
    return ScaledBytes(raw, offset, scale, dtype), floats


@pytest.mark.parametrize("enabled", PATHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("offset, scale", [(0.0, 255.0), (33.3, 7.1), (-1.5, -0.37)])
def test_take_gives_the_floats_of_scaling_the_converted_array(enabled, dtype, offset, scale, monkeypatch):
    _path(enabled, monkeypatch)
    X, floats = _bytes_and_floats(offset=offset, scale=scale, dtype=dtype)
    assert floats.dtype == np.dtype(dtype)
    rows = np.random.default_rng(1).integers(0, 300, 64)  # repeats included
    out = np.empty((64, 37), dtype)
    assert take_rows(X, rows, out) is out
    assert out.tobytes() == floats[rows].tobytes()
    assert X.to_array().tobytes() == floats.tobytes() and np.asarray(X).tobytes() == floats.tobytes()
    block = np.empty((10, 37), dtype)
    assert row_block(X, 290, 300, block).tobytes() == floats[290:].tobytes()


@pytest.mark.parametrize("enabled", PATHS)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_large_batch_has_the_same_numbers_streamed_or_not(enabled, streamed, dtype, monkeypatch):
    _path(enabled, monkeypatch)
    if enabled:
        kernels.compiled.store_policy("streaming" if streamed else "ordinary")
        monkeypatch.setattr(kernels, "ENABLED", True)  # undone after the test, and the policy with it below
    X, floats = _bytes_and_floats(n=1000, d=785, offset=12.5, scale=3.3, dtype=dtype)
    rows = np.random.default_rng(4).integers(0, 1000, 300)
    out = np.empty(300 * 785 + 1, dtype)[1:].reshape(300, 785)  # over 256 KiB, unaligned
    assert X.take(rows, out).tobytes() == floats[rows].tobytes()
    if enabled:
        kernels.compiled.store_policy("auto")


@pytest.mark.parametrize("enabled", PATHS)
def test_take_counts_negative_rows_from_the_end_and_refuses_rows_out_of_range(enabled, monkeypatch):
    _path(enabled, monkeypatch)
    X, floats = _bytes_and_floats(n=20, d=5)
    out = np.empty((3, 5), np.float32)
    assert X.take(np.array([-1, 0, -20]), out).tobytes() == floats[[-1, 0, -20]].tobytes()
    with pytest.raises(IndexError):
        X.take(np.array([0, 20, 1]), out)


def test_take_with_other_index_arrays_and_outputs_falls_back_to_the_same_numbers():
    X, floats = _bytes_and_floats(n=20, d=6)
    for rows in (np.array([3, 1, 4], np.int32), np.arange(6)[::2]):
        out = np.empty((3, 6), np.float32)
        assert X.take(rows, out).tobytes() == floats[rows].tobytes()
    out = np.empty((3, 12), np.float32)[:, ::2]  # not contiguous
    np.testing.assert_array_equal(X.take(np.array([0, 5, 9]), out), floats[[0, 5, 9]])
    half = np.empty((3, 6), np.float16)  # a float type the kernel does not write: NumPy's, in float16
    expected = X.raw[[0, 5, 9]].astype(np.float16)
    expected -= np.float16(X.offset)
    expected /= np.float16(X.scale)
    assert X.take(np.array([0, 5, 9]), half).tobytes() == expected.tobytes()


@pytest.mark.skipif(kernels.compiled is None, reason="ffnn was built without its C extension")
def test_the_kernel_refuses_what_it_cannot_take():
    raw = np.zeros((4, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        kernels.compiled.take_scaled_rows(raw.astype(np.int16), np.arange(2), np.empty((2, 3), np.float32), 0.0, 1.0)
    with pytest.raises(TypeError, match="uint8"):
        kernels.compiled.take_scaled_rows(raw, np.arange(2), np.empty((2, 4), np.float32), 0.0, 1.0)
    with pytest.raises(TypeError, match="uint8"):
        kernels.compiled.take_scaled_rows(raw, np.arange(2), np.empty((2, 3), np.int32), 0.0, 1.0)


@pytest.mark.parametrize("args, message", [
    ((np.zeros((3, 2)), 0.0, 1.0), "uint8"),
    ((np.zeros(3, np.uint8), 0.0, 1.0), "2-D"),
    ((np.zeros((3, 2), np.uint8), 0.0, 0.0), "nonzero scale"),
    ((np.zeros((3, 2), np.uint8), float("nan"), 1.0), "finite offset"),
])
def test_bad_contents_are_refused_with_one_line(args, message):
    with pytest.raises(DataError, match=message):
        ScaledBytes(*args)


@pytest.mark.parametrize("enabled", PATHS)
def test_a_network_evaluates_and_predicts_bytes_as_it_does_their_floats(enabled, monkeypatch):
    _path(enabled, monkeypatch)
    X, floats = _bytes_and_floats(n=250, d=12, offset=128.0, scale=64.0)
    y = np.arange(250) % 3
    net = ffnn.Network([12, 8, 3], seed=0)
    for batch_size in (64, 1024):  # a partial last chunk, and one chunk
        assert net.predict_proba(X, batch_size).tobytes() == net.predict_proba(floats, batch_size).tobytes()
        assert net.evaluate(X, y, batch_size) == net.evaluate(floats, y, batch_size)
        rows = np.random.default_rng(2).permutation(250)[:100]
        assert net.evaluate(X, y, batch_size, rows=rows) == net.evaluate(floats, y, batch_size, rows=rows)


@pytest.mark.parametrize("enabled", PATHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_on_bytes_ends_with_the_weights_of_training_on_their_floats(enabled, dtype, monkeypatch):
    _path(enabled, monkeypatch)
    X, floats = _bytes_and_floats(n=400, d=20, offset=100.0, scale=50.0, dtype=dtype)
    y = (np.arange(400) * 7) % 4
    rows, validation_rows = np.arange(60, 400), np.arange(60)
    results = []
    for inputs in (X, floats):
        net = ffnn.Network([20, 16, 4], dtype=dtype, seed=0)
        trainer = Trainer(net, get_optimizer("adam", 1e-2), epochs=3, batch_size=32, seed=1, verbose=0)
        history = trainer.fit(inputs, y, rows=rows, validation_rows=validation_rows)
        results.append((net.theta.tobytes(), history["loss"], history["val_loss"]))
    assert results[0] == results[1]
    net = ffnn.Network([20, 16, 4], dtype=dtype, seed=0)  # fit() takes bytes too
    assert len(net.fit(X, y, epochs=1, verbose=0, validation_fraction=0.2)) == 1


def test_a_cuda_style_array_module_gets_the_floats():
    X, floats = _bytes_and_floats(n=10, d=4)
    net = ffnn.Network([4, 3], seed=0)
    net.xp = type("FakeXp", (), {"asarray": staticmethod(np.asarray), "isfinite": staticmethod(np.isfinite)})
    checked = net._check_X(X)
    assert isinstance(checked, np.ndarray) and checked.tobytes() == floats.tobytes()


def test_parameters_gradients_and_moments_start_at_different_page_offsets():
    from ffnn.arrays import staggered_zeros, staggered_zeros_like

    net = ffnn.Network([784, 128, 128, 10], seed=0)
    trainer = Trainer(net, get_optimizer("adam", 1e-3), epochs=1, batch_size=32, seed=0, verbose=0)
    rng = np.random.default_rng(0)
    trainer.fit(rng.standard_normal((64, 784)).astype(np.float32), rng.integers(0, 10, 64))
    arrays = [net.theta, trainer._grad, *trainer.optimizer.state.values()]
    assert len(arrays) == 4 and all(a.shape == net.theta.shape and a.dtype == np.float32 for a in arrays)
    assert all(a.flags.c_contiguous and a.flags.writeable for a in arrays)
    assert len({a.ctypes.data % 4096 for a in arrays}) == 4
    a = staggered_zeros(1000, "float64")
    assert a.shape == (1000,) and a.dtype == np.float64 and not a.any() and a.ctypes.data % 64 == 0
    matrix = np.ones((3, 4))
    assert staggered_zeros_like(matrix).shape == (3, 4) and not staggered_zeros_like(matrix).any()
