import warnings

import numpy as np
import pytest

from ffnn.activations import ACTIVATIONS, get_activation
from ffnn.errors import ConfigError

NAMES = ["logistic", "tanh", "identity", "relu"]

CLOSED_FORMS = {
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "tanh": lambda a: (np.exp(a) - np.exp(-a)) / (np.exp(a) + np.exp(-a)),
    "identity": lambda a: a,
    "relu": lambda a: np.where(a > 0, a, 0.0),
}


def points(seed=0, shape=(5, 6)):
    """Moderate float64 pre-activations kept away from relu's kink at 0."""
    a = np.random.default_rng(seed).uniform(-4, 4, size=shape)
    a[np.abs(a) < 0.05] += 0.1
    return a


@pytest.mark.parametrize("name", NAMES)
def test_g_matches_closed_form(name):
    a = points()
    np.testing.assert_allclose(get_activation(name).g(a), CLOSED_FORMS[name](a), rtol=1e-12, atol=1e-14)


def test_relu_and_logistic_hand_values():
    a = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(get_activation("relu").g(a), [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(get_activation("logistic").g(a), [[0.11920292202211755, 0.5, 0.9525741268224334]],
                               rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_g_prime_matches_central_difference(name):
    act = get_activation(name)
    a = points(1)
    eps = 1e-6
    numeric = (CLOSED_FORMS[name](a + eps) - CLOSED_FORMS[name](a - eps)) / (2 * eps)
    analytic = act.g_prime(a, act.g(a))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("alias, canonical", [("sigmoid", "logistic"), ("ReLU", "relu"), ("linear", "identity"),
                                              ("identity", "identity"), ("TANH", "tanh"), ("Logistic", "logistic"),
                                              ("Sigmoid", "logistic"), ("LINEAR", "identity")])
def test_aliases_and_case_insensitivity(alias, canonical):
    act = get_activation(alias)
    assert act is ACTIVATIONS[canonical]
    assert act.name == canonical


def test_get_activation_passes_an_activation_through():
    act = ACTIVATIONS["tanh"]
    assert get_activation(act) is act


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_activation("softplus")
    message = str(info.value)
    assert "softplus" in message
    for name in NAMES + ["sigmoid", "linear"]:
        assert name in message
    assert "\n" not in message


@pytest.mark.parametrize("name", NAMES)
def test_float32_extremes_are_finite_and_warning_free(name):
    act = get_activation(name)
    a = np.array([[-1e4, -1e3, -88.8, -20.0, 0.0, 20.0, 88.8, 1e3, 1e4]], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        h = act.g(a)
        d = act.g_prime(a, h)
    assert h.dtype == np.float32 and d.dtype == np.float32
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(d))
    if name == "logistic":
        np.testing.assert_allclose(h[0, [0, -1]], [0.0, 1.0], atol=1e-7)
        np.testing.assert_allclose(d[0, [0, -1]], [0.0, 0.0], atol=1e-7)
        assert np.all((h >= 0) & (h <= 1))
    elif name == "tanh":
        np.testing.assert_allclose(h[0, [0, -1]], [-1.0, 1.0])
        np.testing.assert_allclose(d[0, [0, -1]], [0.0, 0.0], atol=1e-7)
    else:
        np.testing.assert_array_equal(h, CLOSED_FORMS[name](a.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_path_equals_allocating_path(name, dtype):
    act = get_activation(name)
    a = points(2).astype(dtype)
    h = act.g(a)
    d = act.g_prime(a, h)
    out_h = np.full_like(a, np.nan)
    out_d = np.full_like(a, np.nan)
    returned_h = act.g(a, out=out_h)
    returned_d = act.g_prime(a, out_h, out=out_d)
    assert returned_h is out_h and returned_d is out_d
    np.testing.assert_array_equal(out_h, h)
    np.testing.assert_array_equal(out_d, d)
    assert h.dtype == dtype and d.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_allocating_path_leaves_input_untouched(name):
    act = get_activation(name)
    a = points(3)
    before = a.copy()
    h = act.g(a)
    act.g_prime(a, h)
    np.testing.assert_array_equal(a, before)
    assert not np.shares_memory(h, a)


def test_relu_prime_is_zero_at_zero_and_one_above():
    a = np.array([[-1.0, 0.0, 1e-30, 2.0]])
    act = get_activation("relu")
    np.testing.assert_array_equal(act.g_prime(a, act.g(a)), [[0.0, 0.0, 1.0, 1.0]])


# -- backward: grad_h * g'(a), compiled where built, the same numbers as NumPy ---------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["tanh", "logistic", "relu", "identity"])
def test_backward_is_grad_h_times_g_prime_bit_for_bit(name, dtype, monkeypatch):
    from ffnn import kernels

    rng = np.random.default_rng(3)
    act = get_activation(name)
    a = (rng.standard_normal((33, 17)) * 4).astype(dtype)
    a[0, :3] = 0  # relu'(0) = 0
    h = act.g(a)
    grad_h = (rng.standard_normal(a.shape) * 10.0 ** rng.integers(-30, 3, a.shape)).astype(dtype)
    grad_h[1, :4] = [np.nan, np.inf, -np.inf, 0]
    with np.errstate(invalid="ignore"):  # relu: 0 * inf
        expected = act.g_prime(a, h) * grad_h
    for enabled in ([False, True] if kernels.compiled is not None else [False]):
        monkeypatch.setattr(kernels, "ENABLED", enabled)
        out = np.empty_like(a)
        with np.errstate(invalid="ignore"):
            assert act.backward(a, h, grad_h, out=out) is out
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == dtype


def test_backward_of_a_new_activation_takes_the_numpy_path():
    from ffnn.activations import Activation

    square = Activation("square", lambda a, out=None: np.multiply(a, a, out=out),
                        lambda a, h, out=None: np.multiply(a, 2, out=out))
    a = np.array([[1.0, -2.0, 3.0]])
    out = np.empty_like(a)
    square.backward(a, a * a, np.array([[1.0, 1.0, 0.5]]), out=out)
    assert out.tolist() == [[2.0, -4.0, 3.0]]


def test_forward_adds_the_bias_then_applies_g_even_for_an_unhashable_g():
    from dataclasses import dataclass

    from ffnn.activations import Activation, tanh_prime

    @dataclass
    class Scaled:  # a dataclass defines __eq__ and so is not hashable
        scale: float

        def __call__(self, a, out=None):
            return np.multiply(a, self.scale, out=out)

    act = Activation("scaled", Scaled(2.0), tanh_prime)
    a, h = np.array([[1.0, -2.0, 3.0]]), np.empty((1, 3))
    act.forward(a, np.array([0.5, 0.5, -1.0]), out=h)
    assert a.tolist() == [[1.5, -1.5, 2.0]] and h.tolist() == [[3.0, -3.0, 4.0]]
    out = np.empty((1, 3))
    act.backward(a, h, np.ones((1, 3)), out=out)  # the built-in g' of an own g still takes its compiled pass
    assert out.tolist() == [[-8.0, -8.0, -15.0]]


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-7), (np.float64, 1e-15)])
def test_logistic_is_accurate_far_into_both_tails(dtype, rtol):
    import math

    a = np.array([-80.0, -40.0, -30.0, -20.0, -17.0, -15.0, -1.0, 0.0, 1.0, 15.0, 30.0], dtype)
    exact = np.array([1 / (1 + math.exp(-float(v))) for v in a])  # float64 reference, exact to rounding here
    h = get_activation("logistic").g(a)
    tiny = np.finfo(dtype).tiny
    ok = exact >= tiny  # below the smallest normal number only the rounding to subnormals is left
    np.testing.assert_allclose(h[ok], exact[ok], rtol=rtol * 4)
