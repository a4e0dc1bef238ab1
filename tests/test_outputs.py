import contextlib
import warnings

import numpy as np
import pytest

from ffnn.errors import ConfigError
from ffnn.outputs import (cross_entropy, get_output_layer, linear, one_hot, softmax, squared_error)

PAIRS = [("softmax", "cross_entropy"), ("softmax", "squared_error"), ("linear", "squared_error")]


def logsumexp(a):
    a = np.asarray(a, np.float64)
    m = a.max(axis=1, keepdims=True)
    return (np.log(np.exp(a - m).sum(axis=1, keepdims=True)) + m)[:, 0]


def reference_softmax(a):
    a = np.asarray(a, np.float64)
    return np.exp(a - logsumexp(a)[:, None])


@contextlib.contextmanager
def strict():
    """Turn overflow, division by zero, invalid operations and every warning into errors for the block.

    Underflow stays allowed: exp(-2e4) rounding to 0 is the correctly rounded value of a vanishing probability.
    """
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        warnings.simplefilter("error")
        yield


EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [3.0, -1e4, 1e4]], dtype=np.float32)


# -- softmax -------------------------------------------------------------------------------------------------
def test_softmax_hand_values():
    a = np.array([[0.0, np.log(3.0)], [1.0, 1.0]])
    np.testing.assert_allclose(softmax(a), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-12)


def test_softmax_rows_sum_to_one_and_match_definition():
    a = np.random.default_rng(0).normal(0, 3, size=(6, 5))
    y_hat = softmax(a)
    np.testing.assert_allclose(y_hat.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(y_hat, np.exp(a) / np.exp(a).sum(axis=1, keepdims=True), rtol=1e-12)
    assert np.all(y_hat > 0)


def test_softmax_invariant_to_a_constant_per_row():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 3))
    c = rng.normal(0, 50, size=(4, 1))
    np.testing.assert_allclose(softmax(a + c), softmax(a), rtol=1e-9, atol=1e-15)


def test_softmax_extremes_float32_are_finite_and_warning_free():
    with strict():
        y_hat = softmax(EXTREME)
    assert y_hat.dtype == np.float32
    assert np.all(np.isfinite(y_hat))
    np.testing.assert_allclose(y_hat.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y_hat, reference_softmax(EXTREME), atol=1e-6)


def test_softmax_out_path_and_input_untouched():
    a = np.random.default_rng(2).normal(size=(3, 4))
    before = a.copy()
    expected = softmax(a)
    np.testing.assert_array_equal(a, before)
    out = np.full_like(a, np.nan)
    assert softmax(a, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_linear_output_is_a_copy():
    a = np.arange(6.0).reshape(2, 3)
    y_hat = linear(a)
    np.testing.assert_array_equal(y_hat, a)
    assert not np.shares_memory(y_hat, a)
    out = np.zeros_like(a)
    assert linear(a, out=out) is out
    np.testing.assert_array_equal(out, a)


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3, np.float64), [[0, 0, 1], [1, 0, 0]])


# -- losses --------------------------------------------------------------------------------------------------
def test_cross_entropy_is_mean_minus_log_softmax_of_the_label():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 2, size=(7, 4))
    y = rng.integers(0, 4, size=7)
    y_hat = softmax(a)
    expected = np.mean(-np.log(y_hat[np.arange(7), y]))
    assert cross_entropy(a, y_hat, y) == pytest.approx(expected, rel=1e-12)
    # One-hot targets give the same number.
    assert cross_entropy(a, y_hat, one_hot(y, 4, np.float64)) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_hand_value():
    a = np.array([[0.0, np.log(3.0)]])   # y_hat = [1/4, 3/4]
    y = np.array([0])
    assert cross_entropy(a, softmax(a), y) == pytest.approx(np.log(4.0), rel=1e-12)


def test_cross_entropy_soft_targets():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(5, 3))
    t = rng.dirichlet(np.ones(3), size=5)
    y_hat = softmax(a)
    expected = np.mean(np.sum(-t * np.log(y_hat), axis=1))
    assert cross_entropy(a, y_hat, t) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_finite_for_extreme_float32():
    y = np.array([1, 0, 2, 2])
    with strict():
        y_hat = softmax(EXTREME)
        value = cross_entropy(EXTREME, y_hat, y)
    a64 = EXTREME.astype(np.float64)
    expected = np.mean(logsumexp(a64) - a64[np.arange(4), y])   # rows: 2e4, log 3, 2e4 + log 2, ~0
    assert np.isfinite(value)
    assert expected > 1e3
    assert value == pytest.approx(expected, rel=1e-6)


def test_squared_error_has_no_half_and_uses_one_hot_for_labels():
    y_hat = np.array([[0.2, 0.8], [0.6, 0.4]])
    y = np.array([1, 1])
    # row 1: 0.2^2 + 0.2^2 = 0.08; row 2: 0.6^2 + 0.6^2 = 0.72; mean = 0.40
    assert squared_error(None, y_hat, y) == pytest.approx(0.40, rel=1e-12)
    assert squared_error(None, y_hat, one_hot(y, 2, np.float64)) == pytest.approx(0.40, rel=1e-12)


def test_squared_error_real_targets():
    rng = np.random.default_rng(5)
    y_hat = rng.normal(size=(6, 3))
    t = rng.normal(size=(6, 3))
    expected = np.mean(np.sum((y_hat - t) ** 2, axis=1))
    assert squared_error(y_hat, y_hat, t) == pytest.approx(expected, rel=1e-12)


# -- pairs ---------------------------------------------------------------------------------------------------
def test_linear_cross_entropy_is_refused_naming_the_valid_pairs():
    with pytest.raises(ConfigError) as info:
        get_output_layer("linear", "cross_entropy")
    message = str(info.value)
    for output, loss in PAIRS:
        assert f"{output} + {loss}" in message
    assert "\n" not in message


@pytest.mark.parametrize("output, loss", [("softmax", "hinge"), ("sigmoid", "cross_entropy")])
def test_unknown_output_or_loss(output, loss):
    with pytest.raises(ConfigError) as info:
        get_output_layer(output, loss)
    assert ("hinge" if loss == "hinge" else "sigmoid") in str(info.value)


@pytest.mark.parametrize("output, loss, expected", [("Softmax", "CE", ("softmax", "cross_entropy")),
                                                    ("identity", "mse", ("linear", "squared_error")),
                                                    ("softmax", "mean_squared_error", ("softmax", "squared_error"))])
def test_pair_aliases(output, loss, expected):
    layer = get_output_layer(output, loss)
    assert (layer.output, layer.loss_name) == expected


def targets_for(output, loss, kind, rng, n, k):
    if kind == "labels":
        return rng.integers(0, k, size=n)
    if kind == "one_hot":
        return one_hot(rng.integers(0, k, size=n), k, np.float64)
    if loss == "cross_entropy":
        return rng.dirichlet(np.ones(k), size=n)   # soft targets: probability rows
    return rng.normal(size=(n, k))


def loss_of_a(layer, a, y):
    return layer.loss(a, layer.O(a), y)


@pytest.mark.parametrize("output, loss", PAIRS)
@pytest.mark.parametrize("kind", ["labels", "one_hot", "real"])
@pytest.mark.parametrize("n", [1, 5])
def test_grad_a_matches_central_differences(output, loss, kind, n):
    rng = np.random.default_rng(6)
    k = 4
    layer = get_output_layer(output, loss)
    a = rng.normal(0, 1.5, size=(n, k))
    y = targets_for(output, loss, kind, rng, n, k)
    analytic = layer.grad_a(a, layer.O(a), y)
    numeric = np.empty_like(a)
    eps = 1e-6
    for idx in np.ndindex(a.shape):
        plus, minus = a.copy(), a.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (loss_of_a(layer, plus, y) - loss_of_a(layer, minus, y)) / (2 * eps)
    assert analytic.shape == (n, k)
    err = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert err < 1e-7


@pytest.mark.parametrize("output, loss", PAIRS)
def test_grad_a_out_path_equals_allocating_path(output, loss):
    rng = np.random.default_rng(7)
    layer = get_output_layer(output, loss)
    a = rng.normal(size=(3, 4))
    y = rng.integers(0, 4, size=3)
    y_hat = layer.O(a)
    expected = layer.grad_a(a, y_hat, y)
    out = np.full_like(a, np.nan)
    assert layer.grad_a(a, y_hat, y, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=1e-17)


def test_fused_gradient_hand_value():
    layer = get_output_layer("softmax", "cross_entropy")
    a = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])
    y = np.array([1, 0])
    # (y_hat - e(l)) / N = ([0.25, -0.25], [-0.5, 0.5]) / 2
    np.testing.assert_allclose(layer.grad_a(a, layer.O(a), y), [[0.125, -0.125], [-0.25, 0.25]], rtol=1e-12)


@pytest.mark.parametrize("output, loss", PAIRS)
@pytest.mark.parametrize("kind", ["labels", "real"])
def test_grad_a_finite_for_extreme_float32(output, loss, kind):
    layer = get_output_layer(output, loss)
    n, k = EXTREME.shape
    if kind == "labels":
        y = np.array([1, 0, 2, 2])
    elif loss == "cross_entropy":
        y = np.full((n, k), 1.0 / k, dtype=np.float32)
    else:
        y = np.random.default_rng(8).normal(size=(n, k)).astype(np.float32)
    with strict():
        y_hat = layer.O(EXTREME)
        value = layer.loss(EXTREME, y_hat, y)
        grad = layer.grad_a(EXTREME, y_hat, y, out=np.empty_like(EXTREME))
    assert np.isfinite(value)
    assert grad.dtype == np.float32
    assert np.all(np.isfinite(grad))


def test_squared_error_takes_1d_targets_for_a_single_output():
    a = np.array([[0.5], [-1.0], [2.0]])
    for y in (np.array([0.3, -0.7, 1.2]), np.array([0, 0, 0])):
        layer = get_output_layer("linear", "squared_error")
        expected = np.mean((a[:, 0] - y) ** 2)
        assert squared_error(a, a, y) == pytest.approx(expected)
        np.testing.assert_allclose(layer.grad_a(a, a, y), 2 * (a - y[:, None]) / 3)
