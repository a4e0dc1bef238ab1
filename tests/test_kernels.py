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


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_correct_equals_numpy_argmax_with_ties_infinities_and_nan(enabled, dtype, monkeypatch):
    if enabled and kernels.compiled is None:
        pytest.skip("ffnn was built without its C extension")
    monkeypatch.setattr(kernels, "ENABLED", enabled)
    rng = np.random.default_rng(0)
    y_hat = rng.standard_normal((400, 10)).astype(dtype)
    y_hat[0] = 1.0                                   # all tied: the first
    y_hat[1, [2, 7]] = 9.0                           # two tied maxima: the first
    y_hat[2, 4], y_hat[2, 8] = np.nan, 50.0          # NaN beats every number
    y_hat[3, 0] = np.nan                             # NaN first
    y_hat[4, [3, 6]] = np.nan                        # two NaNs: the first
    y_hat[5, 5], y_hat[5, 9] = np.inf, np.nan
    y_hat[6] = -np.inf
    y_hat[7, 1] = np.inf
    expected_argmax = y_hat.argmax(axis=1)
    assert list(expected_argmax[:8]) == [0, 2, 4, 0, 3, 9, 0, 1]
    for labels in (expected_argmax, rng.integers(0, 10, 400), (expected_argmax + 1) % 10):
        labels = labels.astype(np.int64)
        assert kernels.count_correct(y_hat, labels) == int((expected_argmax == labels).sum())
    assert kernels.count_correct(y_hat, expected_argmax.astype(np.int64)) == 400
    one_column = np.zeros((3, 1), dtype)
    assert kernels.count_correct(one_column, np.array([0, 0, 1])) == 2


def test_count_correct_falls_back_for_what_the_kernel_does_not_take():
    y_hat = np.arange(24.0).reshape(4, 6)
    assert kernels.count_correct(y_hat[:, ::2], np.array([2, 2, 0, 2], np.int64)) == 3  # not contiguous
    assert kernels.count_correct(y_hat, np.array([5, 5, 5, 0], np.int32)) == 3  # other label type


@compiled
def test_count_correct_kernel_refuses_mismatched_labels():
    with pytest.raises(TypeError, match="label per row"):
        kernels.compiled.count_correct(np.zeros((3, 2), np.float32), np.zeros(2, np.int64))


@pytest.fixture
def streaming(request):
    """Large writes stream (True) or not (False) for the test, as while stores are slow or fast."""
    kernels.compiled.store_policy("streaming" if request.param else "ordinary")
    yield request.param
    kernels.compiled.store_policy("auto")


@compiled
@pytest.mark.parametrize("streaming", [False, True], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_a_large_batch_equals_np_take_whether_streamed_or_not(dtype, streaming):
    # Batches of 256 KiB and more can be streamed to memory; the output starts one element into its buffer,
    # unaligned.
    before = kernels.compiled.store_policy()["gather"]
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((3000, 785)) * 100).astype(dtype)
    rows = rng.integers(0, 3000, 400)
    out = np.empty(400 * 785 + 1, dtype)[1:].reshape(400, 785)
    assert kernels.take_rows(X, rows, out) is out
    assert np.array_equal(out, np.take(X, rows, axis=0))
    if out.nbytes >= 256 * 1024:  # the uint8 batch is below it: never streamed
        after = kernels.compiled.store_policy()["gather"]
        assert after[streaming] == before[streaming] + 1 and after[not streaming] == before[not streaming]


@compiled
def test_the_store_policy_probes_both_kinds_of_store_for_large_updates_and_can_be_fixed():
    theta, grad = np.zeros(70_000, np.float32), np.ones(70_000, np.float32)
    counts = lambda: kernels.compiled.store_policy()["update"]  # noqa: E731
    assert kernels.compiled.store_policy()["setting"] == "auto"
    before = counts()
    for _ in range(5):
        kernels.compiled.sgd(theta[:1000], grad[:1000], 0.5)  # small: always ordinary stores, not counted
    assert counts() == before
    for _ in range(200):
        kernels.compiled.sgd(theta, grad, 0.5)
    ordinary, streamed = (after - first for after, first in zip(counts(), before))
    # Whichever kind of store is faster here, the other is probed one call in 32.
    assert ordinary + streamed == 200 and min(ordinary, streamed) >= 200 // 32 - 1
    assert np.all(theta[1000:] == -100.0) and np.all(theta[:1000] == -102.5)
    for setting, expected in (("streaming", (0, 10)), ("ordinary", (10, 0))):
        kernels.compiled.store_policy(setting)
        before = counts()
        for _ in range(10):
            kernels.compiled.sgd(theta, grad, 0.5)
        assert tuple(after - first for after, first in zip(counts(), before)) == expected
    assert kernels.compiled.store_policy("auto")["setting"] == "auto"
    with pytest.raises(ValueError, match="'auto', 'ordinary' or 'streaming'"):
        kernels.compiled.store_policy("sometimes")


def test_backward_falls_back_for_read_only_or_float16_arrays(monkeypatch):
    if kernels.compiled is None:
        pytest.skip("ffnn was built without its C extension")
    monkeypatch.setattr(kernels, "ENABLED", True)
    a, h, grad_h = (np.full((4, 3), v, np.float32) for v in (0.5, 0.25, 2.0))
    out = np.empty_like(a)
    h.flags.writeable = False
    assert kernels.backward(0, a, h, grad_h, out) is False
    half = [x.astype(np.float16) for x in (a, a, grad_h, out)]
    assert kernels.backward(0, *half) is False
