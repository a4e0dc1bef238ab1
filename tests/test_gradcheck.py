import numpy as np
import pytest

from ffnn import activations, outputs
from ffnn.activations import Activation
from ffnn.gradcheck import check_gradients, numerical_gradients, random_problem, relative_error
from ffnn.network import Network


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert relative_error([1.0, 0.0], [0.0, 0.0]) == pytest.approx(1.0)
    # ||(0, 0.5)|| / (||(1, 0)|| + ||(1, 0.5)||) = 0.5 / (1 + sqrt(1.25))
    assert relative_error([1.0, 0.0], [1.0, 0.5]) == pytest.approx(0.5 / (1 + np.sqrt(1.25)))


def test_random_problem_is_float64_with_the_right_kind_of_targets():
    net, X, y = random_problem([3, 4, 2], batch=5)
    assert net.dtype == np.float64 and X.shape == (5, 3)
    assert y.shape == (5,) and y.dtype.kind == "i" and y.min() >= 0 and y.max() < 2
    assert np.any(net.theta[net.n_weights:] != 0)
    net, X, y = random_problem([3, 2], output="linear", loss="squared_error", batch=4)
    assert y.shape == (4, 2) and y.dtype == np.float64


def test_numerical_gradients_of_a_known_linear_model():
    # One linear layer with squared error: L = mean_n ||W x_n + b - y_n||^2.
    net = Network([2, 1], activation="identity", output="linear", loss="squared_error", dtype="float64")
    net.params["W1"][...] = [[2.0, -1.0]]
    net.params["b1"][...] = [0.5]
    X = np.array([[1.0, 1.0]])
    y = np.array([[0.0]])
    # residual r = 2 - 1 + 0.5 - 0 = 1.5; dL/dW = 2 r x = [3, 3]; dL/db = 2 r = 3
    numeric = numerical_gradients(net, X, y)
    np.testing.assert_allclose(numeric["W1"], [[3.0, 3.0]], rtol=1e-7)
    np.testing.assert_allclose(numeric["b1"], [3.0], rtol=1e-7)
    # The parameters are restored afterwards.
    np.testing.assert_array_equal(net.params["W1"], [[2.0, -1.0]])


def test_correct_gradients_pass():
    net, X, y = random_problem([4, 5, 3], activation="tanh")
    errors = check_gradients(net, X, y)
    assert set(errors) == {"W1", "W2", "b1", "b2"}
    assert max(errors.values()) < 1e-6


@pytest.mark.parametrize("name", ["tanh", "logistic", "relu"])
def test_a_wrong_activation_derivative_is_detected(monkeypatch, name):
    right = activations.ACTIVATIONS[name]

    def wrong_g_prime(a, h, out=None):
        # A plausible slip: 1 - h for every activation (forgets the h factor or the square).
        return np.subtract(1.0, h, out=out)

    monkeypatch.setitem(activations.ACTIVATIONS, name, Activation(name, right.g, wrong_g_prime))
    net, X, y = random_problem([4, 5, 3], activation=name)
    errors = check_gradients(net, X, y)
    assert errors["W1"] > 1e-2
    assert errors["b1"] > 1e-2
    # The last layer does not use g', so its gradient is still right.
    assert errors["W2"] < 1e-6


def test_a_wrong_output_gradient_is_detected(monkeypatch):
    def forgot_the_batch_mean(a, y_hat, y, out=None):
        out = outputs.grad_softmax_cross_entropy(a, y_hat, y, out=out)
        out *= y_hat.shape[0]
        return out

    monkeypatch.setitem(outputs.GRADIENTS, ("softmax", "cross_entropy"), forgot_the_batch_mean)
    net, X, y = random_problem([4, 3, 3], batch=7)
    errors = check_gradients(net, X, y)
    assert min(errors.values()) > 0.5


def test_softmax_squared_error_through_the_fused_formula_is_detected(monkeypatch):
    # y_hat - e(l) is the gradient of cross-entropy only; used for squared error it must fail the check.
    monkeypatch.setitem(outputs.GRADIENTS, ("softmax", "squared_error"), outputs.grad_softmax_cross_entropy)
    net, X, y = random_problem([4, 3, 3], loss="squared_error")
    assert max(check_gradients(net, X, y).values()) > 1e-2
