import numpy as np
import pytest

from ffnn import kernels, optimizers
from ffnn.errors import ConfigError
from ffnn.optimizers import OPTIMIZERS, get_optimizer

NAMES = ["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"]
LR = 0.1
compiled = pytest.mark.skipif(kernels.compiled is None, reason="ffnn was built without its C extension")


@pytest.fixture(autouse=True, params=["numpy", "fused"])
def update_path(request, monkeypatch):
    """Every test here runs on the NumPy updates and again on the compiled kernels (where built)."""
    if request.param == "fused" and kernels.compiled is None:
        pytest.skip("ffnn was built without its C extension")
    monkeypatch.setattr(kernels, "ENABLED", request.param == "fused")
    return request.param


def initial_params():
    return {"w": np.array([1.0, -2.0, 0.5]), "b": np.array([[0.3, -0.7], [2.0, 0.0]])}


def given_grads():
    """Three steps' gradients per parameter, fixed in advance (independent of the parameters)."""
    rng = np.random.default_rng(0)
    return [{k: rng.normal(size=v.shape) for k, v in initial_params().items()} for _ in range(3)]


def run(name, **hyperparameters):
    opt = get_optimizer(name, learning_rate=LR, **hyperparameters)
    params = initial_params()
    history = []
    for grads in given_grads():
        opt.step(params, grads)
        history.append({k: v.copy() for k, v in params.items()})
    return history


def textbook(update):
    """Apply ``update(theta, g, state, t)`` (plain numpy, per parameter) for the same three gradients."""
    params = initial_params()
    states = {k: {} for k in params}
    history = []
    for t, grads in enumerate(given_grads(), 1):
        for k in params:
            params[k] = update(params[k], grads[k], states[k], t)
        history.append({k: v.copy() for k, v in params.items()})
    return history


def assert_same_history(got, expected):
    assert len(got) == len(expected) == 3
    for g, e in zip(got, expected):
        for k in e:
            np.testing.assert_allclose(g[k], e[k], rtol=1e-12, atol=1e-14)


def test_sgd():
    def update(theta, g, s, t):
        return theta - LR * g
    assert_same_history(run("sgd"), textbook(update))


def test_momentum():
    beta = 0.8

    def update(theta, g, s, t):
        s["u"] = beta * s.get("u", 0.0) + LR * g     # u_t = beta u_{t-1} + eta grad
        return theta - s["u"]                        # theta_{t+1} = theta_t - u_t
    assert_same_history(run("momentum", momentum=beta), textbook(update))


def test_momentum_default_beta_is_0_9():
    def update(theta, g, s, t):
        s["u"] = 0.9 * s.get("u", 0.0) + LR * g
        return theta - s["u"]
    assert_same_history(run("momentum"), textbook(update))


def test_rmsprop():
    beta, eps = 0.7, 1e-6

    def update(theta, g, s, t):
        s["v"] = beta * s.get("v", 0.0) + (1 - beta) * g ** 2
        return theta - LR * g / (np.sqrt(s["v"]) + eps)
    assert_same_history(run("rmsprop", beta=beta, epsilon=eps), textbook(update))


def test_adam():
    b1, b2, eps = 0.8, 0.95, 1e-7

    def update(theta, g, s, t):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
        m_hat = s["m"] / (1 - b1 ** t)
        v_hat = s["v"] / (1 - b2 ** t)
        return theta - LR * m_hat / (np.sqrt(v_hat) + eps)
    assert_same_history(run("adam", beta1=b1, beta2=b2, epsilon=eps), textbook(update))


def test_adam_first_step_moves_each_entry_by_about_the_learning_rate():
    # With bias correction, m_hat = g and v_hat = g^2 at t = 1, so the step is eta * sign(g).
    params = initial_params()
    start = {k: v.copy() for k, v in params.items()}
    grads = given_grads()[0]
    get_optimizer("adam", learning_rate=LR).step(params, grads)
    for k in params:
        np.testing.assert_allclose(start[k] - params[k], LR * np.sign(grads[k]), rtol=1e-6)


def test_nadam():
    b1, b2, eps = 0.8, 0.95, 1e-7

    def update(theta, g, s, t):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
        m_hat = s["m"] / (1 - b1 ** t)
        v_hat = s["v"] / (1 - b2 ** t)
        return theta - LR / (np.sqrt(v_hat) + eps) * (b1 * m_hat + (1 - b1) * g / (1 - b1 ** t))
    assert_same_history(run("nadam", beta1=b1, beta2=b2, epsilon=eps), textbook(update))


def test_nadam_differs_from_adam():
    adam, nadam = run("adam"), run("nadam")
    assert not np.allclose(adam[-1]["w"], nadam[-1]["w"])


# -- NAG against the lecture's look-ahead form ----------------------------------------------------------------
A = np.array([[3.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 2.0]])
B = np.array([1.0, -1.0, 0.5])


def quadratic_grad(theta):
    """grad of f(theta) = theta^T A theta / 2 - B^T theta."""
    return A @ theta - B


@pytest.mark.parametrize("beta", [0.9, 0.5])
def test_nag_stores_the_lecture_look_ahead_point(beta):
    # Lecture: u_t = beta u_{t-1} + eta grad(theta_t - beta u_{t-1});  theta_{t+1} = theta_t - u_t.
    theta = np.array([1.0, -2.0, 0.5])
    u = np.zeros(3)
    opt = get_optimizer("nag", learning_rate=LR, momentum=beta)
    params = {"theta": theta.copy()}
    for _ in range(5):
        # The optimizer's iterate is where it wants the gradient: the look-ahead point.
        opt.step(params, {"theta": quadratic_grad(params["theta"])})
        u = beta * u + LR * quadratic_grad(theta - beta * u)
        theta = theta - u
        np.testing.assert_allclose(params["theta"], theta - beta * u, rtol=1e-12, atol=1e-14)


def test_nag_is_not_plain_momentum():
    theta = {"theta": np.array([1.0, -2.0, 0.5])}
    other = {"theta": theta["theta"].copy()}
    nag, momentum = get_optimizer("nag", learning_rate=LR), get_optimizer("momentum", learning_rate=LR)
    for _ in range(3):
        nag.step(theta, {"theta": quadratic_grad(theta["theta"])})
        momentum.step(other, {"theta": quadratic_grad(other["theta"])})
    assert not np.allclose(theta["theta"], other["theta"])


# -- state and errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name):
    grads = given_grads()
    first = get_optimizer(name, learning_rate=LR)
    params = initial_params()
    for g in grads[:2]:
        first.step(params, g)
    state = first.state_dict()
    resumed_params = {k: v.copy() for k, v in params.items()}

    # A fresh optimizer with other hyperparameters takes everything from the state.
    other = {"momentum": {"momentum": 0.1}, "nag": {"momentum": 0.1}, "rmsprop": {"beta": 0.2},
             "adam": {"beta1": 0.1}, "nadam": {"beta2": 0.3}}.get(name, {})
    resumed = get_optimizer(name, learning_rate=0.5, **other)
    resumed.load_state_dict(state)
    assert resumed.t == 2

    first.step(params, grads[2])
    resumed.step(resumed_params, grads[2])
    for k in params:
        np.testing.assert_array_equal(resumed_params[k], params[k])


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_state_dict_holds_copies(name):
    opt = get_optimizer(name, learning_rate=LR)
    params = initial_params()
    opt.step(params, given_grads()[0])
    state = opt.state_dict()
    saved = {k: v.copy() for k, v in state["arrays"].items()}
    assert saved
    opt.step(params, given_grads()[1])
    for k in saved:
        np.testing.assert_array_equal(state["arrays"][k], saved[k])


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_optimizer("adagrad")
    for name in NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("name, kwargs", [("sgd", {"momentum": 0.9}), ("adam", {"beta": 0.9}),
                                          ("rmsprop", {"beta1": 0.9}), ("momentum", {"nesterov": True})])
def test_unknown_hyperparameter(name, kwargs):
    with pytest.raises(ConfigError) as info:
        get_optimizer(name, learning_rate=LR, **kwargs)
    assert list(kwargs)[0] in str(info.value)


@pytest.mark.parametrize("lr", [0, 0.0, -0.1, float("nan"), float("inf"), "0.1", None])
@pytest.mark.parametrize("name", NAMES)
def test_bad_learning_rate(name, lr):
    with pytest.raises(ConfigError):
        get_optimizer(name, learning_rate=lr)


def test_case_insensitive_name_and_registry():
    assert type(get_optimizer("Adam")) is OPTIMIZERS["adam"]
    assert set(OPTIMIZERS) == set(NAMES)


# -- convergence -----------------------------------------------------------------------------------------
SETTINGS = {"sgd": 0.2, "momentum": 0.05, "nag": 0.05, "rmsprop": 0.01, "adam": 0.05, "nadam": 0.05}


def quadratic(theta):
    return 0.5 * theta @ A @ theta - B @ theta


@pytest.mark.parametrize("name", NAMES)
def test_each_optimizer_reduces_a_convex_quadratic(name):
    optimum = np.linalg.solve(A, B)
    f_star = quadratic(optimum)
    params = {"theta": np.array([3.0, -4.0, 2.5])}
    f0 = quadratic(params["theta"]) - f_star
    opt = get_optimizer(name, learning_rate=SETTINGS[name])
    for _ in range(300):
        opt.step(params, {"theta": quadratic_grad(params["theta"])})
    assert quadratic(params["theta"]) - f_star < 1e-2 * f0
    assert np.linalg.norm(params["theta"] - optimum) < 0.2


@pytest.mark.parametrize("name", NAMES)
def test_float32_parameters_stay_float32_and_are_updated_in_place(name):
    params = {"w": np.ones(4, np.float32)}
    array = params["w"]
    opt = get_optimizer(name, learning_rate=LR)
    opt.step(params, {"w": np.full(4, 0.5, np.float32)})
    assert params["w"] is array
    assert array.dtype == np.float32
    assert np.all(array < 1)


# -- the compiled kernels against the NumPy updates --------------------------------------------------------------

def trajectory(name, dtype, fused, monkeypatch, steps=40, learning_rate=0.01, size=1003, **hyperparameters):
    """Parameters and state after ``steps`` updates with gradients spanning 12 orders of magnitude, zeros among
    them (Adam's state then underflows towards subnormals). The parameters start one element into their buffer, so
    that a large vector's streamed stores begin unaligned."""
    monkeypatch.setattr(kernels, "ENABLED", fused)
    rng = np.random.default_rng(1)
    theta = np.empty(size + 1, dtype)[1:]
    theta[...] = rng.standard_normal(size)
    opt = get_optimizer(name, learning_rate=0.01, **hyperparameters)
    opt.learning_rate = learning_rate  # as a schedule sets it, possibly a NumPy scalar
    for _ in range(steps):
        grad = (rng.standard_normal(theta.shape) * 10.0 ** rng.integers(-9, 3, theta.shape)).astype(dtype)
        grad[rng.random(theta.shape) < 0.2] = 0
        opt.step({"theta": theta}, {"theta": grad})
    return theta, opt.state


@compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,hyperparameters", [
    ("sgd", {}), ("momentum", {"momentum": 0.8}), ("nag", {}), ("rmsprop", {"beta": 0.95, "epsilon": 1e-6}),
    ("adam", {}), ("adam", {"beta1": 0.5, "beta2": 0.9, "epsilon": 1e-3}), ("nadam", {}),
])
@pytest.mark.parametrize("size, streamed", [(1003, False), (70_001, False), (70_001, True)])
def test_kernels_give_bit_identical_parameters_and_state(name, hyperparameters, dtype, size, streamed, monkeypatch):
    # 70,001 elements make over 256 KiB, which the kernels write with streaming stores while ordinary stores are
    # slow; store_policy makes them stream (or not) now.
    kernels.compiled.store_policy("streaming" if streamed else "ordinary")
    steps = 40 if size < 10_000 else 8
    fused_theta, fused_state = trajectory(name, dtype, True, monkeypatch, steps=steps, size=size, **hyperparameters)
    numpy_theta, numpy_state = trajectory(name, dtype, False, monkeypatch, steps=steps, size=size, **hyperparameters)
    assert fused_theta.dtype == dtype
    assert np.array_equal(fused_theta, numpy_theta)
    assert fused_state.keys() == numpy_state.keys()
    for key in fused_state:
        assert np.array_equal(fused_state[key], numpy_state[key]), key
    kernels.compiled.store_policy("auto")


@compiled
def test_a_subclass_that_rewrites_update_does_not_inherit_the_kernel():
    class HalfAdam(optimizers.Adam):
        name = "half-adam"

        def update(self, key, theta, grad):
            super().update(key, theta, grad * 0.5)

    half, plain = HalfAdam(learning_rate=0.1), optimizers.Adam(learning_rate=0.1)
    theta_half, theta_plain = np.ones(4), np.ones(4)
    grad = np.array([1.0, -2.0, 3.0, 0.0])
    half.step({"p": theta_half}, {"p": grad})
    plain.step({"p": theta_plain}, {"p": grad})
    assert np.array_equal(half.state["m.p"], plain.state["m.p"] * 0.5)


def test_non_contiguous_views_take_the_numpy_path_with_the_same_result():
    W = np.arange(12.0).reshape(3, 4)
    grad = np.linspace(-1, 1, 12).reshape(3, 4)
    viewed, flat = W.copy().T, W.copy().T.copy()  # the same values, a transposed view and a contiguous copy
    for theta in (viewed, flat):
        opt = get_optimizer("adam", learning_rate=0.1)
        for _ in range(3):
            opt.step({"W": theta}, {"W": np.ascontiguousarray(grad.T) if theta is flat else grad.T})
    assert np.array_equal(viewed, flat)


@compiled
@pytest.mark.parametrize("learning_rate", [np.float64(0.003), np.float32(0.003), 0.003])
@pytest.mark.parametrize("name", NAMES)
def test_kernels_match_numpy_whatever_type_the_learning_rate_has(name, learning_rate, monkeypatch):
    fused_theta, _ = trajectory(name, np.float32, True, monkeypatch, steps=5, learning_rate=learning_rate)
    numpy_theta, _ = trajectory(name, np.float32, False, monkeypatch, steps=5, learning_rate=learning_rate)
    assert np.array_equal(fused_theta, numpy_theta)


@pytest.mark.parametrize("name", NAMES)
def test_a_read_only_gradient_is_used_as_numpy_would(name):
    theta = np.ones(5, np.float32)
    grad = np.linspace(-1, 1, 5).astype(np.float32)
    grad.flags.writeable = False
    expected = theta.copy()
    get_optimizer(name, learning_rate=0.1).step({"p": expected}, {"p": grad.copy()})
    get_optimizer(name, learning_rate=0.1).step({"p": theta}, {"p": grad})
    assert np.array_equal(theta, expected)


@compiled
@pytest.mark.parametrize("step", ["denominator", "moments", "update"])
def test_a_subclass_that_rewrites_a_step_of_adam_is_not_run_by_adams_kernel(step, monkeypatch):
    class Halved(optimizers.Adam):
        name = "halved"

    def halved(self, *args):  # the parent's result, halved: visibly another rule
        result = getattr(optimizers.Adam, step)(self, *args)
        if step == "denominator":
            result *= 2
        elif step == "moments":
            result[0][...] *= 0.5
        else:
            args[1][...] -= 0.001
        return result

    setattr(Halved, step, halved)
    results = []
    for fused in (False, True):
        monkeypatch.setattr(kernels, "ENABLED", fused)
        theta = np.zeros(3)
        opt = Halved(learning_rate=0.1)
        for _ in range(3):
            opt.step({"theta": theta}, {"theta": np.array([0.5, -1.0, 2.0])})
        results.append(theta)
    np.testing.assert_array_equal(results[0], results[1])
    plain = np.zeros(3)
    opt = optimizers.Adam(learning_rate=0.1)
    for _ in range(3):
        opt.step({"theta": plain}, {"theta": np.array([0.5, -1.0, 2.0])})
    assert not np.array_equal(results[0], plain)


def test_a_users_rule_takes_any_finite_hyperparameter(tmp_path, monkeypatch):
    from ffnn import runs
    from ffnn.config import TrainConfig

    class Eve(optimizers.Adam):
        name = "eve"
        hyperparameters = {**optimizers.Adam.hyperparameters, "damping": 0.5}

        def update(self, key, theta, grad):
            m, v, c1, c2 = self.moments(key, theta, grad)
            den = self.denominator(key, theta, v, c2)
            theta -= self.learning_rate * self.damping / c1 * m / den

    assert Eve(damping=1.5).damping == 1.5
    with pytest.raises(ConfigError, match="damping must be a finite number"):
        Eve(damping=float("nan"))
    with pytest.raises(ConfigError, match="beta1 must be a number in \\[0, 1\\)"):
        Eve(beta1=1.5)
    monkeypatch.setitem(OPTIMIZERS, "eve", Eve)
    result = runs.train(TrainConfig(dataset="iris", optimizer="eve", epochs=1, batch_size=16,
                                    output_dir=str(tmp_path)), verbose=0)
    assert result.status == "completed" and result.trainer.optimizer.damping == 0.5

    class Decaying(optimizers.SGD):  # a hyperparameter named like a setting of the run keeps its own default
        name = "decaying"
        hyperparameters = {"weight_decay": 0.01}

    monkeypatch.setitem(OPTIMIZERS, "decaying", Decaying)
    assert TrainConfig(optimizer="decaying", weight_decay=0.5).optimizer_kwargs() == {}
