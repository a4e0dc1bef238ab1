"""Central-difference gradient checks: the numerical proof that back_propagation is right.

For every parameter entry theta_i, ``(L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps)`` is compared with the
entry back_propagation computed. The error of a parameter array is ``||analytic - numeric|| /
(||analytic|| + ||numeric||)`` (0 when both are 0), which is about 1e-9 or smaller for a correct float64 gradient.
"""

import numpy as np

from .network import Network


def numerical_gradients(net, X, y, eps=1e-6):
    """Central-difference gradients of ``net``'s batch-mean loss on (X, y); same keys as ``net.params``."""
    flat = np.empty(net.n_params, dtype=np.float64)
    cache = net.new_cache(X.shape[0])
    for i in range(net.n_params):
        old = net.theta[i]
        net.theta[i] = old + eps
        net.forward_propagation(X, cache)
        plus = net.loss(cache, y)
        net.theta[i] = old - eps
        net.forward_propagation(X, cache)
        minus = net.loss(cache, y)
        net.theta[i] = old
        flat[i] = (plus - minus) / (2 * eps)
    return net.views(flat)


def relative_error(analytic, numeric):
    """``||a - n|| / (||a|| + ||n||)``, 0 when both vanish."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if scale == 0 else float(np.linalg.norm(analytic - numeric) / scale)


def check_gradients(net, X, y, eps=1e-6):
    """Per-parameter relative error between back_propagation and central differences: {"W1": err, ...}."""
    _, cache = net.forward_propagation(X)
    analytic = net.back_propagation(cache, y)
    numeric = numerical_gradients(net, X, y, eps)
    return {k: relative_error(analytic[k], numeric[k]) for k in net.params}


def random_problem(sizes, activation="tanh", output="softmax", loss="cross_entropy", batch=7, seed=0):
    """A float64 network with random weights and a random batch (X, y) of the right kind, for checks."""
    net = Network(sizes, activation=activation, output=output, loss=loss, dtype="float64", seed=seed)
    rng = np.random.default_rng(seed + 1)
    # Random nonzero biases too, so their gradients are exercised away from the initial zeros.
    net.theta[net.n_weights:] = rng.normal(0, 0.5, net.n_params - net.n_weights)
    X = rng.normal(size=(batch, sizes[0]))
    if net.output_layer.output == "softmax":
        y = rng.integers(0, sizes[-1], size=batch)
    else:
        y = rng.normal(size=(batch, sizes[-1]))
    return net, X, y
