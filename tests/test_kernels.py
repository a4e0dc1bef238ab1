import os

import numpy as np
import pytest

from ffnn import kernels

compiled = pytest.mark.skipif(kernels.compiled is None, reason="ffnn was built without its C extension")


def test_the_c_extension_is_built_where_required():
    # CI sets FFNN_REQUIRE_KERNELS so that a broken build of _kernels.c cannot pass unnoticed as the fallback.
    if not os.environ.get("FFNN_REQUIRE_KERNELS"):
        pytest.skip("FFNN_REQUIRE_KERNELS is not set")
    assert kernels.compiled is not None and kernels.ENABLED


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_take_rows_equals_np_take(enabled, dtype, monkeypatch):
    if enabled and kernels.compiled is None:
        pytest.skip("ffnn was built without its C extension")
    monkeypatch.setattr(kernels, "ENABLED", enabled)
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((500, 37)) * 100).astype(dtype)
    rows = rng.integers(0, 500, 64)  # repeats included
    out = np.empty((64, 37), dtype)
    assert kernels.take_rows(X, rows, out) is out
    assert np.array_equal(out, np.take(X, rows, axis=0))


@pytest.mark.parametrize("rows", [np.array([0, 3, 1], np.int32), np.arange(6)[::2]])
def test_take_rows_falls_back_for_other_index_arrays(rows):
    X = np.arange(20.0).reshape(5, 4)
    out = np.empty((3, 4))
    assert np.array_equal(kernels.take_rows(X, rows, out), X[rows])


def test_take_rows_of_a_non_contiguous_array_falls_back():
    X = np.arange(40.0).reshape(5, 8)[:, ::2]
    out = np.empty((2, 4))
    assert np.array_equal(kernels.take_rows(X, np.array([4, 0]), out), X[[4, 0]])


@pytest.mark.parametrize("enabled", [False, True])
def test_take_rows_counts_negative_rows_from_the_end_like_numpy(enabled, monkeypatch):
    monkeypatch.setattr(kernels, "ENABLED", enabled and kernels.compiled is not None)
    X = np.arange(20.0).reshape(5, 4)
    out = np.empty((3, 4))
    assert np.array_equal(kernels.take_rows(X, np.array([-1, 0, -5]), out), X[[4, 0, 0]])


@compiled
@pytest.mark.parametrize("bad", [-6, 5])
def test_compiled_take_rows_refuses_out_of_range_rows(bad):
    X = np.zeros((5, 3), np.float32)
    out = np.empty((2, 3), np.float32)
    with pytest.raises(IndexError, match="out of bounds"):
        kernels.compiled.take_rows(X, np.array([0, bad]), out)


@compiled
def test_compiled_take_rows_refuses_mismatched_shapes():
    X = np.zeros((5, 3), np.float32)
    with pytest.raises(TypeError, match="matching rows"):
        kernels.compiled.take_rows(X, np.array([0, 1]), np.empty((3, 3), np.float32))
    with pytest.raises(TypeError, match="matching rows"):
        kernels.compiled.take_rows(X, np.array([0, 1]), np.empty((2, 3), np.float64))


@compiled
def test_backward_runs_compiled_for_the_arrays_it_takes(monkeypatch):
    monkeypatch.setattr(kernels, "ENABLED", True)
    a, h, grad_h = (np.full((4, 3), v, np.float32) for v in (0.5, 0.25, 2.0))
    out = np.empty_like(a)
    assert kernels.backward(0, a, h, grad_h, out) is True
    assert np.all(out == np.float32((1 - 0.25 * 0.25) * 2.0))
    assert kernels.backward(None, a, h, grad_h, out) is False          # not a built-in g'
    assert kernels.backward(0, a, h, grad_h.astype(np.float64), out) is False
    assert kernels.backward(0, a.T, h.T, grad_h.T, np.empty((3, 4), np.float32)) is False
