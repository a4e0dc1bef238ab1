import numpy as np
import pytest

from ffnn import Network
from ffnn.errors import ConfigError, DataError
from ffnn.gradcheck import check_gradients, random_problem, relative_error
from ffnn.outputs import cross_entropy, softmax

ACTIVATIONS = ["logistic", "tanh", "identity", "relu"]
PAIRS = [("softmax", "cross_entropy"), ("softmax", "squared_error"), ("linear", "squared_error")]
SIZES = {0: [3, 4], 1: [3, 5, 4], 3: [3, 5, 4, 3, 4]}


# -- the gradient check ----------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("hidden", [0, 1, 3])
@pytest.mark.parametrize("output, loss", PAIRS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_back_propagation_matches_central_differences(activation, output, loss, hidden, batch):
    net, X, y = random_problem(SIZES[hidden], activation=activation, output=output, loss=loss, batch=batch,
                               seed=hidden * 10 + batch)
    errors = check_gradients(net, X, y)
    assert set(errors) == set(net.params)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output, loss", PAIRS)
def test_gradient_check_with_one_hot_or_real_targets(activation, output, loss):
    net, X, _ = random_problem([3, 4, 3], activation=activation, output=output, loss=loss, batch=5, seed=3)
    rng = np.random.default_rng(11)
    if loss == "cross_entropy":
        y = rng.dirichlet(np.ones(3), size=5)           # probability rows (one-hot is a special case)
    else:
        y = rng.normal(size=(5, 3))
    assert max(check_gradients(net, X, y).values()) < 1e-6


# -- one example worked by hand --------------------------------------------------------------------------
def hand_network():
    net = Network([2, 2, 2], activation="logistic", output="softmax", loss="cross_entropy", dtype="float64")
    net.params["W1"][...] = [[0.5, -0.25], [0.25, 0.5]]
    net.params["b1"][...] = [0.0, -1.0]
    net.params["W2"][...] = [[1.0, -1.0], [-1.0, 2.0]]
    net.params["b2"][...] = [0.5, 0.0]
    return net


def test_hand_worked_forward_and_backward():
    net = hand_network()
    x = np.array([[1.0, 2.0]])
    label = np.array([1])

    # a1 = W1 x + b1 = [0.5*1 - 0.25*2 + 0, 0.25*1 + 0.5*2 - 1] = [0, 0.25]
    a1 = [0.0, 0.25]
    # h1 = sigma(a1) = [1/2, 1/(1 + e^-0.25)] = [0.5, 1/(1 + 0.7788008)] = [0.5, 0.5621765]
    h1 = [0.5, 0.5621765009]
    # a2 = W2 h1 + b2 = [0.5 - 0.5621765 + 0.5, -0.5 + 2*0.5621765 + 0] = [0.4378235, 0.6243530]
    a2 = [0.4378234991, 0.6243530018]
    # y_hat = softmax(a2): e^a2 = [1.5493314, 1.8670376], sum 3.4163690 -> [0.4535024, 0.5464976]
    y_hat = [0.4535023632, 0.5464976368]
    # loss = -log y_hat[1] = -log 0.5464976 = 0.6042253
    loss = 0.6042252957

    y_hat_net, cache = net.forward_propagation(x)
    np.testing.assert_allclose(cache.a[1][0], a1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cache.h[1][0], h1, rtol=1e-9)
    np.testing.assert_allclose(cache.a[2][0], a2, rtol=1e-9)
    np.testing.assert_allclose(y_hat_net[0], y_hat, rtol=1e-9)
    assert net.loss(cache, label) == pytest.approx(loss, rel=1e-9)

    # grad_a2 = y_hat - e(1) = [0.4535024, 0.5464976 - 1] = [0.4535024, -0.4535024]
    grad_b2 = [0.4535023632, -0.4535023632]
    # grad_W2 = grad_a2 h1^T: 0.4535024 * [0.5, 0.5621765] = [0.2267512, 0.2549484], second row negated
    grad_W2 = [[0.2267511816, 0.2549483717], [-0.2267511816, -0.2549483717]]
    # grad_h1 = W2^T grad_a2 = [1*0.4535024 + (-1)*(-0.4535024), -1*0.4535024 + 2*(-0.4535024)]
    #         = [0.9070047, -1.3605071]
    # g'(a1) = h1 (1 - h1) = [0.25, 0.5621765 * 0.4378235] = [0.25, 0.2461341]
    # grad_a1 = grad_h1 * g'(a1) = [0.2267512, -0.3348672]
    grad_b1 = [0.2267511816, -0.3348671646]
    # grad_W1 = grad_a1 x^T = [[0.2267512, 0.4535024], [-0.3348672, -0.6697343]]
    grad_W1 = [[0.2267511816, 0.4535023632], [-0.3348671646, -0.6697343292]]

    grads = net.back_propagation(cache, label)
    np.testing.assert_allclose(grads["W1"], grad_W1, rtol=1e-9)
    np.testing.assert_allclose(grads["b1"], grad_b1, rtol=1e-9)
    np.testing.assert_allclose(grads["W2"], grad_W2, rtol=1e-9)
    np.testing.assert_allclose(grads["b2"], grad_b2, rtol=1e-9)


def test_hand_worked_batch_gradient_is_the_mean_of_the_examples():
    net = hand_network()
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]])
    y = np.array([1, 0, 1])
    _, cache = net.forward_propagation(X)
    batch = net.back_propagation(cache, y)
    single = []
    for i in range(3):
        _, c = net.forward_propagation(X[i:i + 1])
        single.append({k: v.copy() for k, v in net.back_propagation(c, y[i:i + 1]).items()})
    for k in batch:
        np.testing.assert_allclose(batch[k], np.mean([s[k] for s in single], axis=0), rtol=1e-12)


# -- parameters ----------------------------------------------------------------------------------------------
def test_params_are_views_of_theta_in_the_lecture_layout():
    net = Network([3, 4, 2], dtype="float64", seed=0)
    assert list(net.params) == ["W1", "W2", "b1", "b2"]
    assert net.params["W1"].shape == (4, 3) and net.params["W2"].shape == (2, 4)
    assert net.params["b1"].shape == (4,) and net.params["b2"].shape == (2,)
    assert net.n_params == 12 + 8 + 4 + 2 == net.theta.size
    assert net.n_weights == 20
    # Each W_k's block holds it column by column (W_k^T row-major).
    np.testing.assert_array_equal(net.theta[:12], net.params["W1"].T.ravel())
    np.testing.assert_array_equal(net.theta[12:20], net.params["W2"].T.ravel())
    # Writing a parameter writes theta, and the other way round.
    net.params["b1"][2] = 7.0
    assert net.theta[20 + 2] == 7.0
    net.params["W2"][1, 3] = -3.0
    assert net.theta[12 + 3 * 2 + 1] == -3.0
    net.theta[-1] = 5.0
    assert net.params["b2"][1] == 5.0
    for v in net.params.values():
        assert np.shares_memory(v, net.theta)
    # The lecture's 1-indexed lists are the same views.
    assert net.W[1] is net.params["W1"] and net.b[2] is net.params["b2"]


def test_biases_start_at_zero_and_weights_do_not():
    net = Network([5, 6, 3], seed=1)
    np.testing.assert_array_equal(net.theta[net.n_weights:], 0)
    assert np.all(net.theta[:net.n_weights] != 0)


def test_same_seed_same_weights_different_seed_different():
    a = Network([4, 6, 3], seed=7)
    b = Network([4, 6, 3], seed=7)
    c = Network([4, 6, 3], seed=8)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, c.theta)
    g = Network([4, 6, 3], seed=np.random.default_rng(7))
    np.testing.assert_array_equal(g.theta, a.theta)


@pytest.mark.parametrize("init", ["random", "xavier", "he"])
def test_init_scale(init):
    net = Network([400, 300, 10], init=init, seed=0, dtype="float64")
    std = net.params["W1"].std()
    expected = {"random": 0.01, "xavier": np.sqrt(6 / 700) / np.sqrt(3), "he": np.sqrt(2 / 400)}[init]
    assert std == pytest.approx(expected, rel=0.05)


def test_float32_by_default_float64_on_request():
    net = Network([3, 4, 2], seed=0)
    assert net.dtype == np.float32 and net.theta.dtype == np.float32
    X = np.random.default_rng(0).normal(size=(5, 3))           # float64 input is converted
    y_hat, cache = net.forward_propagation(X)
    assert y_hat.dtype == np.float32
    grads = net.back_propagation(cache, np.array([0, 1, 1, 0, 1]))
    assert all(g.dtype == np.float32 for g in grads.values())
    assert net.predict_proba(X).dtype == np.float32

    net64 = Network([3, 4, 2], dtype="float64", seed=0)
    assert net64.theta.dtype == np.float64
    y_hat64, _ = net64.forward_propagation(X.astype(np.float32))
    assert y_hat64.dtype == np.float64
    # Same seed: the float32 weights are the float64 ones rounded.
    np.testing.assert_allclose(net.theta, net64.theta, rtol=1e-6)


def test_config_and_repr():
    net = Network([3, 4, 2], activation="sigmoid", output="softmax", loss="ce", init="Xavier", seed=0)
    assert net.config == {"sizes": [3, 4, 2], "activation": "logistic", "output": "softmax",
                          "loss": "cross_entropy", "init": "xavier", "dtype": "float32", "dropout": 0.0}
    assert "logistic" in repr(net)


# -- forward / backward mechanics -----------------------------------------------------------------------
def test_forward_matches_the_equations_written_out():
    net, X, _ = random_problem([3, 5, 4, 2], activation="tanh", batch=6)
    W1, W2, W3 = net.params["W1"], net.params["W2"], net.params["W3"]
    b1, b2, b3 = net.params["b1"], net.params["b2"], net.params["b3"]
    h1 = np.tanh(X @ W1.T + b1)
    h2 = np.tanh(h1 @ W2.T + b2)
    a3 = h2 @ W3.T + b3
    y_hat, cache = net.forward_propagation(X)
    np.testing.assert_allclose(cache.h[1], h1, rtol=1e-12)
    np.testing.assert_allclose(cache.a[3], a3, rtol=1e-12)
    np.testing.assert_allclose(y_hat, np.exp(a3) / np.exp(a3).sum(axis=1, keepdims=True), rtol=1e-12)
    assert cache.h[0] is not None and cache.y_hat is y_hat


def test_cache_reuse_gives_identical_results():
    net, X, y = random_problem([3, 5, 4, 3], activation="relu", batch=6)
    y_hat, cache = net.forward_propagation(X)
    y_hat, loss = y_hat.copy(), net.loss(cache, y)
    grads = {k: v.copy() for k, v in net.back_propagation(cache, y).items()}

    reused = net.new_cache(6)
    rng = np.random.default_rng(0)
    # Dirty the workspace with another batch first: nothing may leak through.
    net.forward_propagation(rng.normal(size=(6, 3)), reused)
    net.back_propagation(reused, rng.integers(0, 3, size=6))
    y_hat2, cache2 = net.forward_propagation(X, cache=reused)
    assert cache2 is reused
    np.testing.assert_array_equal(y_hat2, y_hat)
    assert net.loss(reused, y) == loss
    grads2 = net.back_propagation(reused, y)
    for k in grads:
        np.testing.assert_array_equal(grads2[k], grads[k])


def test_back_propagation_writes_into_the_given_buffer():
    net, X, y = random_problem([3, 4, 2], activation="logistic", batch=4)
    _, cache = net.forward_propagation(X)
    expected = {k: v.copy() for k, v in net.back_propagation(cache, y).items()}
    buffer = np.full(net.n_params, np.nan)
    grads = net.back_propagation(cache, y, out=buffer)
    assert np.all(np.isfinite(buffer))
    for k in expected:
        assert np.shares_memory(grads[k], buffer)
        np.testing.assert_array_equal(grads[k], expected[k])
    # Same layout as theta: W1, W2 (column-major), b1, b2.
    np.testing.assert_array_equal(buffer, np.concatenate([expected[k].ravel(order="F")
                                                          for k in ["W1", "W2", "b1", "b2"]]))


def test_loss_is_the_output_layer_loss():
    net, X, y = random_problem([3, 4, 3], batch=5)
    y_hat, cache = net.forward_propagation(X)
    np.testing.assert_allclose(net.loss(cache, y), np.mean(-np.log(y_hat[np.arange(5), y])), rtol=1e-12)


# -- using a network -----------------------------------------------------------------------------------------
def data(n=23, features=3, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)), rng.integers(0, classes, size=n)


def test_predict_proba_predict_and_evaluate_softmax():
    net = Network([3, 6, 4], dtype="float64", seed=0)
    net.theta[net.n_weights:] = np.random.default_rng(1).normal(0, 1, net.n_params - net.n_weights)
    X, y = data()
    proba = net.predict_proba(X)
    assert proba.shape == (23, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    a1 = X @ net.params["W1"].T + net.params["b1"]
    a2 = np.tanh(a1) @ net.params["W2"].T + net.params["b2"]
    np.testing.assert_allclose(proba, softmax(a2), rtol=1e-12)

    pred = net.predict(X)
    assert pred.shape == (23,) and pred.dtype.kind == "i"
    np.testing.assert_array_equal(pred, a2.argmax(axis=1))

    result = net.evaluate(X, y)
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(cross_entropy(a2, proba, y), rel=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(pred == y))
    assert 0 < result["accuracy"] < 1   # the case is not trivial
    # One-hot targets give the same evaluation.
    one_hot = np.eye(4)[y]
    assert net.evaluate(X, one_hot)["loss"] == pytest.approx(result["loss"], rel=1e-12)
    assert net.evaluate(X, one_hot)["accuracy"] == result["accuracy"]


@pytest.mark.parametrize("batch_size", [1, 4, 10, 22, 23, 1000])
def test_chunking_gives_the_same_as_one_chunk(batch_size):
    net = Network([3, 6, 4], dtype="float64", seed=2)
    X, y = data()
    whole_proba = net.predict_proba(X, batch_size=len(X))
    whole_eval = net.evaluate(X, y, batch_size=len(X))
    np.testing.assert_allclose(net.predict_proba(X, batch_size=batch_size), whole_proba, rtol=1e-12)
    np.testing.assert_array_equal(net.predict(X, batch_size=batch_size), whole_proba.argmax(axis=1))
    chunked = net.evaluate(X, y, batch_size=batch_size)
    assert chunked["loss"] == pytest.approx(whole_eval["loss"], rel=1e-12)
    assert chunked["accuracy"] == whole_eval["accuracy"]


def test_predict_and_evaluate_linear_output():
    net = Network([3, 5, 2], activation="relu", output="linear", loss="squared_error", dtype="float64", seed=0)
    X, _ = data()
    t = np.random.default_rng(5).normal(size=(23, 2))
    pred = net.predict(X, batch_size=5)
    assert pred.shape == (23, 2)
    np.testing.assert_allclose(pred, net.predict_proba(X))
    result = net.evaluate(X, t, batch_size=5)
    assert set(result) == {"loss"}
    assert result["loss"] == pytest.approx(np.mean(np.sum((pred - t) ** 2, axis=1)), rel=1e-12)


def test_single_output_regression_accepts_a_1d_target():
    net = Network([3, 4, 1], output="linear", loss="squared_error", dtype="float64", seed=0)
    X, _ = data()
    t = np.random.default_rng(6).normal(size=23)
    pred = net.predict(X)
    assert net.evaluate(X, t)["loss"] == pytest.approx(np.mean((pred[:, 0] - t) ** 2), rel=1e-12)


# -- bad input -----------------------------------------------------------------------------------------------
@pytest.fixture
def net():
    return Network([3, 4, 2], seed=0)


def bad_X():
    nan = np.ones((2, 3))
    nan[1, 1] = np.nan
    inf = np.ones((2, 3))
    inf[0, 2] = -np.inf
    return {"features": np.ones((2, 4)), "nan": nan, "inf": inf, "1-D": np.ones(3), "empty": np.empty((0, 3)),
            "3-D": np.ones((2, 3, 1))}


@pytest.mark.parametrize("case", list(bad_X()))
def test_bad_X_is_a_data_error(net, case):
    X = bad_X()[case]
    for call in (lambda: net.forward_propagation(X), lambda: net.predict(X), lambda: net.predict_proba(X),
                 lambda: net.evaluate(X, np.zeros(len(X), int))):
        with pytest.raises(DataError) as info:
            call()
        assert "\n" not in str(info.value)


def test_wrong_feature_count_message(net):
    with pytest.raises(DataError) as info:
        net.predict(np.ones((2, 5)))
    assert "5" in str(info.value) and "3" in str(info.value)


@pytest.mark.parametrize("y", [np.array([0, 2]), np.array([-1, 0]), np.array([0.5, 1.0]), np.array([0.0, np.nan]),
                               np.array(["a", "b"]), np.array([0, 1, 1]), np.zeros((2, 3)), np.zeros((2, 1))],
                         ids=["too-big", "negative", "non-integer", "nan", "strings", "rows", "wide", "narrow"])
def test_bad_labels_are_a_data_error(net, y):
    with pytest.raises(DataError):
        net.evaluate(np.ones((2, 3)), y)


def test_integer_valued_float_labels_are_accepted(net):
    assert net.evaluate(np.ones((2, 3)), np.array([0.0, 1.0]))["loss"] > 0


@pytest.mark.parametrize("t", [np.zeros((4, 3)), np.zeros(4), np.zeros((4, 2, 1)), np.zeros((3, 2)),
                               np.array([[0.0, np.inf]] * 4)])
def test_bad_regression_targets_are_a_data_error(t):
    net = Network([3, 4, 2], output="linear", loss="squared_error", seed=0)
    with pytest.raises(DataError):
        net.evaluate(np.ones((4, 3)), t)


@pytest.mark.parametrize("sizes", [[0, 3], [3, 0], [3, -2, 2], [3], [], [2.5, 3], [3, "4"], None, 5, "34"])
def test_bad_sizes_are_a_config_error(sizes):
    with pytest.raises(ConfigError) as info:
        Network(sizes)
    assert "sizes" in str(info.value)


def test_integer_valued_sizes_are_accepted():
    assert Network([3.0, np.int64(4), 2]).sizes == [3, 4, 2]


@pytest.mark.parametrize("kwargs, word", [({"init": "zeros"}, "zeros"), ({"dtype": "float16"}, "float16"),
                                          ({"dtype": "int32"}, "int32"), ({"activation": "swish"}, "swish"),
                                          ({"output": "linear", "loss": "cross_entropy"}, "softmax + cross_entropy"),
                                          ({"loss": "hinge"}, "hinge")])
def test_bad_configuration_is_a_config_error(kwargs, word):
    with pytest.raises(ConfigError) as info:
        Network([3, 4, 2], **kwargs)
    assert word in str(info.value)


# -- dropout -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["logistic", "tanh", "relu", "identity"])
def test_dropout_gradients_match_central_differences_with_fixed_masks(activation):
    net = Network([5, 6, 4, 3], activation=activation, dtype="float64", seed=0, dropout=0.4)
    data = np.random.default_rng(0)
    X, y = data.normal(size=(7, 5)), data.integers(0, 3, 7)
    cache = net.new_cache(7)
    net.forward_propagation(X, cache, rng=np.random.default_rng(5))
    assert cache.dropout and 0 < (cache.mask[1] == 0).mean() < 1
    grads = net.back_propagation(cache, y)
    numeric = np.empty(net.n_params)
    for i in range(net.n_params):
        losses = []
        for step in (1e-6, -1e-6):
            old = net.theta[i]
            net.theta[i] = old + step
            net.forward_propagation(X, cache, rng=np.random.default_rng(5))  # the same masks every time
            losses.append(net.loss(cache, y))
            net.theta[i] = old
        numeric[i] = (losses[0] - losses[1]) / 2e-6
    numeric = net.views(numeric)
    for key in grads:
        assert relative_error(grads[key], numeric[key]) < 1e-6, key


def test_dropout_is_inverted_and_off_at_evaluation():
    net = Network([20, 50, 3], activation="relu", seed=0, dropout=0.5)
    X = np.random.default_rng(1).random((400, 20)).astype(np.float32)
    cache = net.new_cache(400)
    net.forward_propagation(X, cache, rng=np.random.default_rng(2))
    kept = cache.mask[1] != 0
    assert abs(kept.mean() - 0.5) < 0.02
    np.testing.assert_allclose(cache.mask[1][kept], 2.0)          # kept units scaled by 1 / (1 - p)
    np.testing.assert_array_equal(cache.passed[1], cache.h[1] * cache.mask[1])
    plain = Network([20, 50, 3], activation="relu", seed=0)
    np.testing.assert_array_equal(net.predict_proba(X), plain.predict_proba(X))  # no rng: no dropout


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.5", True])
def test_dropout_out_of_range_is_refused(bad):
    with pytest.raises(ConfigError, match="dropout"):
        Network([3, 4, 2], dropout=bad)


def test_evaluate_on_rows_equals_evaluate_on_the_copied_rows():
    net = Network([6, 5, 3], seed=0)
    data = np.random.default_rng(3)
    X, y = data.normal(size=(50, 6)).astype(np.float32), data.integers(0, 3, 50)
    rows = np.sort(data.choice(50, size=17, replace=False))
    on_rows = net.evaluate(X, y, batch_size=4, rows=rows)
    copied = net.evaluate(X[rows], y[rows], batch_size=4)
    assert on_rows["accuracy"] == copied["accuracy"]
    assert on_rows["loss"] == pytest.approx(copied["loss"], rel=1e-6)
    assert on_rows["loss"] != pytest.approx(net.evaluate(X, y)["loss"], rel=1e-6)


def test_soft_targets_must_be_probabilities_for_cross_entropy():
    net = Network([3, 4, 3], dtype="float64", seed=0)
    X = np.random.default_rng(0).normal(size=(4, 3))
    for Y, words in ((np.array([[1, 1, 0], [0, 1, 0], [.5, .5, 0], [0, 0, 1.]]), "row 0 sums to 2"),
                     (np.array([[1.5, -.5, 0], [0, 1, 0], [.5, .5, 0], [0, 0, 1.]]), "row 0 sums to 1")):
        with pytest.raises(DataError, match=f"must be probabilities.*{words}"):
            net.fit(X, Y, epochs=1, batch_size=4, verbose=0)
    # rows that are probabilities train, and softmax + squared error takes any targets
    net.fit(X, np.full((4, 3), 1 / 3), epochs=1, batch_size=4, verbose=0)
    other = Network([3, 4, 3], loss="squared_error", dtype="float64", seed=0)
    other.fit(X, np.array([[1, 1, 0], [0, 1, 0], [.5, .5, .5], [0, 0, 2.]]), epochs=1, batch_size=4, verbose=0)


def test_dropout_needs_a_hidden_layer():
    with pytest.raises(ConfigError, match="dropout drops hidden units, and this network \\(4-3\\) has none"):
        Network([4, 3], dropout=0.5)
    assert Network([4, 3], dropout=0.0).dropout == 0.0 and Network([4, 2, 3], dropout=0.5).dropout == 0.5
