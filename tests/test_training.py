import numpy as np
import pytest

import ffnn
from ffnn.errors import ConfigError, DataError, TrainingDiverged
from ffnn.optimizers import SGD, get_optimizer
from ffnn.training import COLUMNS, History, Trainer, split_validation


def blobs(n=120, features=4, classes=3, seed=0, spread=0.3):
    """Well separated Gaussian blobs: a problem a small network solves exactly."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, features))
    y = np.arange(n) % classes
    X = centres[y] + rng.normal(0, spread, size=(n, features))
    return X, y


def small_net(seed=0, dtype="float64", sizes=(4, 8, 3), **kwargs):
    return ffnn.Network(list(sizes), activation="tanh", dtype=dtype, seed=seed, **kwargs)


class Recorder:
    """Keeps theta (and the row) at the end of every epoch."""

    def __init__(self):
        self.thetas, self.rows = [], []

    def on_epoch_end(self, trainer, row):
        self.thetas.append(trainer.net.theta.copy())
        self.rows.append(dict(row))


# -- History ----------------------------------------------------------------------------------------------
def test_history_columns_and_csv_round_trip(tmp_path):
    assert COLUMNS == ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
    X, y = blobs()
    history = small_net().fit(X, y, epochs=3, batch_size=16, validation_fraction=0.25, seed=0, verbose=0)
    assert len(history) == 3
    assert history["epoch"] == [1, 2, 3]
    for row in history.rows:
        assert set(COLUMNS) <= set(row)
        assert all(row[c] is not None for c in COLUMNS)
    history.to_csv(tmp_path / "history.csv")
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 4
    again = History.from_csv(tmp_path / "history.csv")
    assert again.rows == history.rows
    assert isinstance(again.rows[0]["epoch"], int)


def test_history_csv_keeps_missing_values_as_none(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 3))
    net = ffnn.Network([3, 4, 2], output="linear", loss="squared_error", dtype="float64", seed=0)
    history = net.fit(X, X[:, :2], epochs=2, batch_size=8, seed=0, verbose=0)
    assert history["accuracy"] == [None, None] and history["val_loss"] == [None, None]
    history.to_csv(tmp_path / "h.csv")
    again = History.from_csv(tmp_path / "h.csv")
    assert again["val_accuracy"] == [None, None] and again["accuracy"] == [None, None]
    assert again["loss"] == history["loss"]


# -- fitting ----------------------------------------------------------------------------------------------
def test_fit_reduces_the_loss_on_a_separable_problem():
    X, y = blobs()
    net = small_net()
    before = net.evaluate(X, y)
    history = net.fit(X, y, epochs=30, batch_size=16, optimizer="adam", learning_rate=0.01, seed=0, verbose=0)
    after = net.evaluate(X, y)
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert after["loss"] < 0.1 * before["loss"]
    assert after["accuracy"] == 1.0
    assert history["accuracy"][-1] == 1.0


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"])
def test_same_seed_gives_bit_identical_weights(optimizer):
    X, y = blobs()
    thetas = []
    for fit_seed in (7, 7, 8):
        net = small_net(seed=1, dtype="float32")
        net.fit(X, y, epochs=3, batch_size=16, optimizer=optimizer, learning_rate=0.01, seed=fit_seed, verbose=0)
        thetas.append(net.theta.copy())
    assert np.array_equal(thetas[0], thetas[1])
    assert not np.array_equal(thetas[0], thetas[2])  # another shuffling order


def test_different_network_seed_gives_different_weights():
    X, y = blobs()
    a, b = small_net(seed=1), small_net(seed=2)
    assert not np.array_equal(a.theta, b.theta)
    for net in (a, b):
        net.fit(X, y, epochs=2, batch_size=16, seed=0, verbose=0)
    assert not np.array_equal(a.theta, b.theta)


def test_validation_fraction_holds_out_part_of_the_training_data():
    X, y = blobs(n=100)
    history = small_net().fit(X, y, epochs=2, batch_size=10, validation_fraction=0.2, seed=3, verbose=0)
    assert all(v is not None for v in history["val_loss"])
    assert all(0 <= v <= 1 for v in history["val_accuracy"])
    # the split is disjoint and covers every example once
    X_tr, y_tr, X_val, y_val = split_validation(X, y, 0.2, np.random.default_rng(3))
    assert X_val.shape == (20, 4) and X_tr.shape == (80, 4)
    rows = {tuple(r) for r in np.vstack([X_tr, X_val])}
    assert rows == {tuple(r) for r in X}


def test_validation_loss_is_that_of_the_held_out_examples():
    X, y = blobs(n=100)
    net = small_net()
    X_tr, y_tr, X_val, y_val = split_validation(X, y, 0.2, np.random.default_rng(3))
    history = net.fit(X, y, epochs=1, batch_size=10, validation_fraction=0.2, seed=3, verbose=0)
    assert history["val_loss"][-1] == pytest.approx(net.evaluate(X_val, y_val)["loss"], rel=1e-12)


def test_validation_data_is_used_as_given():
    X, y = blobs(n=100)
    X_val, y_val = blobs(n=30, seed=0)
    net = small_net()
    history = net.fit(X, y, epochs=2, batch_size=10, validation_data=(X_val, y_val), seed=0, verbose=0)
    assert history["val_loss"][-1] == pytest.approx(net.evaluate(X_val, y_val)["loss"], rel=1e-12)


@pytest.mark.parametrize("fraction", [1.0, -0.1, 0.001])
def test_bad_validation_fraction(fraction):
    X, y = blobs(n=50)
    with pytest.raises((ConfigError, ffnn.DataError), match="fraction|validation"):
        small_net().fit(X, y, epochs=1, batch_size=10, validation_fraction=fraction, verbose=0)


def test_early_stopping_restores_the_best_weights():
    # The validation labels are the training labels flipped, so every epoch that fits the training data
    # better makes the validation loss worse: the best epoch is the first one.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 2))
    y = (X[:, 0] > 0).astype(int)
    net = ffnn.Network([2, 8, 2], activation="tanh", dtype="float64", seed=0)
    rec = Recorder()
    history = net.fit(X, y, epochs=50, batch_size=4, optimizer="sgd", learning_rate=0.5,
                      validation_data=(X, 1 - y), patience=3, seed=0, callbacks=[rec], verbose=0)
    val = history["val_loss"]
    best = int(np.argmin(val))
    assert len(history) == best + 1 + 3 < 50  # stopped after 3 epochs without improvement
    assert val[-1] > val[best]
    assert np.array_equal(net.theta, rec.thetas[best])
    assert not np.array_equal(net.theta, rec.thetas[-1])


def test_early_stopping_without_validation_watches_the_training_loss():
    X, y = blobs(n=60)
    history = small_net().fit(X, y, epochs=8, batch_size=60, optimizer="sgd", learning_rate=0.1, patience=2,
                              seed=0, verbose=0)
    assert len(history) == 8  # the training loss of full-batch gradient descent keeps falling


def test_training_diverged_keeps_the_weights_of_the_last_finished_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = X @ rng.normal(size=(5, 2)) * 10
    net = ffnn.Network([5, 16, 2], activation="relu", output="linear", loss="squared_error", seed=0)
    rec = Recorder()
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as info:
        net.fit(X, y, epochs=50, batch_size=8, optimizer="sgd", learning_rate=0.05, seed=0, callbacks=[rec],
                verbose=0)
    message = str(info.value)
    finished = len(rec.thetas)
    assert finished >= 1  # the case is built to diverge after the first epoch
    assert f"epoch {finished + 1}," in message and "batch " in message and " of 8" in message
    assert "learning rate" in message and "\n" not in message
    assert np.array_equal(net.theta, rec.thetas[-1])
    assert np.all(np.isfinite(net.theta))


def test_training_diverged_in_the_first_epoch_restores_the_initial_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = X @ rng.normal(size=(5, 2)) * 10
    net = ffnn.Network([5, 16, 2], activation="relu", output="linear", loss="squared_error", seed=0)
    initial = net.theta.copy()
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match="epoch 1, batch"):
        net.fit(X, y, epochs=5, batch_size=8, optimizer="sgd", learning_rate=1e3, seed=0, verbose=0)
    assert np.array_equal(net.theta, initial)


class StopAfter(SGD):
    """SGD that asks its trainer to stop after ``n`` steps, as a signal handler would mid-epoch."""

    name = "sgd"

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n, self.trainer = n, None

    def step(self, params, grads):
        super().step(params, grads)
        if self.t == self.n:
            self.trainer.stop_requested = True


def test_stop_requested_mid_epoch_restores_the_last_epoch_end_and_resumes_exactly():
    X, y = blobs(n=80)
    reference = small_net()
    Trainer(reference, get_optimizer("sgd", 0.05), epochs=4, batch_size=16, seed=5, verbose=0).fit(X, y)

    net = small_net()
    opt = StopAfter(2 * 5 + 3, learning_rate=0.05)  # 5 batches per epoch: stop at batch 3 of epoch 3
    rec = Recorder()
    trainer = Trainer(net, opt, epochs=4, batch_size=16, seed=5, callbacks=[rec], verbose=0)
    opt.trainer = trainer
    history = trainer.fit(X, y)
    assert trainer.interrupted and trainer.epoch == 2 and len(history) == 2
    assert np.array_equal(net.theta, rec.thetas[1])
    assert opt.t == 10  # the optimizer is back at the end of epoch 2 too

    trainer.stop_requested = trainer.interrupted = False
    opt.n = -1
    trainer.fit(X, y)
    assert trainer.epoch == 4 and len(trainer.history) == 4
    assert np.array_equal(net.theta, reference.theta)


def test_stop_requested_from_a_callback_before_an_epoch():
    X, y = blobs(n=80)

    class StopAtEpoch3:
        def on_epoch_begin(self, trainer):
            if trainer.epoch == 2:
                trainer.stop_requested = True

    rec = Recorder()
    net = small_net()
    trainer = Trainer(net, get_optimizer("adam", 0.01), epochs=5, batch_size=16, seed=0,
                      callbacks=[StopAtEpoch3(), rec], verbose=0)
    trainer.fit(X, y)
    assert trainer.interrupted and trainer.epoch == 2
    assert np.array_equal(net.theta, rec.thetas[-1])


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "nadam", "rmsprop"])
def test_state_dict_resume_is_bit_identical(optimizer):
    X, y = blobs(n=90)
    kw = {"momentum": 0.8} if optimizer == "momentum" else {}

    reference = small_net(dtype="float32")
    Trainer(reference, get_optimizer(optimizer, 0.01, **kw), epochs=5, batch_size=16, seed=11,
            verbose=0).fit(X, y)

    first = small_net(dtype="float32")
    trainer = Trainer(first, get_optimizer(optimizer, 0.01, **kw), epochs=2, batch_size=16, seed=11, verbose=0)
    trainer.fit(X, y)
    state, theta = trainer.state_dict(), first.theta.copy()
    assert not np.array_equal(theta, reference.theta)

    # a fresh network, optimizer and trainer (other seeds) continue from the saved state
    second = small_net(seed=99, dtype="float32")
    second.theta[...] = theta
    resumed = Trainer(second, get_optimizer(optimizer, 0.01, **kw), epochs=5, batch_size=16, seed=12,
                      verbose=0)
    resumed.load_state_dict(state)
    history = resumed.fit(X, y)
    assert len(history) == 5 and history["epoch"] == [1, 2, 3, 4, 5]
    assert np.array_equal(second.theta, reference.theta)


def test_weight_decay_adds_wd_times_W_to_weight_gradients_only():
    X, y = blobs(n=30)
    lr, wd = 0.1, 0.05
    net = small_net(seed=3)
    net.theta[net.n_weights:] = np.random.default_rng(1).normal(size=net.n_params - net.n_weights)
    theta0 = net.theta.copy()
    _, cache = net.forward_propagation(X)
    grads = {k: v.copy() for k, v in net.back_propagation(cache, y).items()}
    params0 = net.views(theta0)

    Trainer(net, get_optimizer("sgd", lr), epochs=1, batch_size=30, weight_decay=wd, seed=0,
            verbose=0).fit(X, y)
    for k in range(1, net.L + 1):
        W, b = f"W{k}", f"b{k}"
        np.testing.assert_allclose(net.params[W], params0[W] - lr * (grads[W] + wd * params0[W]),
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net.params[b], params0[b] - lr * grads[b], rtol=1e-12, atol=1e-14)


def test_weight_decay_is_not_in_the_reported_loss():
    X, y = blobs(n=30)
    losses = []
    for wd in (0.0, 0.5):
        net = small_net()
        losses.append(net.fit(X, y, epochs=1, batch_size=30, optimizer="sgd", learning_rate=0.1,
                              weight_decay=wd, seed=0, verbose=0)["loss"][0])
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)  # the first step's loss is before any decay


@pytest.mark.parametrize("kwargs,field", [
    ({"batch_size": 31}, "batch_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -4}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"patience": -1}, "patience"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"optimizer": "adagrad"}, "optimizer"),
])
def test_bad_training_arguments_are_config_errors(kwargs, field):
    X, y = blobs(n=30)
    args = {"epochs": 1, "batch_size": 10, "verbose": 0, **kwargs}
    net = small_net()
    theta = net.theta.copy()
    with pytest.raises(ConfigError, match=field):
        net.fit(X, y, **args)
    assert np.array_equal(net.theta, theta)


def test_batch_larger_than_the_data_says_the_limit():
    X, y = blobs(n=30)
    with pytest.raises(ConfigError, match="30"):
        small_net().fit(X, y, epochs=1, batch_size=31, verbose=0)
    small_net().fit(X, y, epochs=1, batch_size=30, verbose=0)  # exactly N is allowed


def test_full_batch_gradient_descent_is_the_lecture_update():
    X, y = blobs(n=40)
    lr = 0.3
    net = small_net(seed=4)
    theta0 = net.theta.copy()
    _, cache = net.forward_propagation(X)
    grad = np.empty(net.n_params)
    net.back_propagation(cache, y, out=grad)
    history = net.fit(X, y, epochs=1, batch_size=40, optimizer="sgd", learning_rate=lr, seed=0, verbose=0)
    np.testing.assert_allclose(net.theta, theta0 - lr * grad, rtol=1e-12, atol=1e-14)
    assert history["loss"][0] == pytest.approx(ffnn.Network.loss(net, cache, y), rel=1e-12)


def test_uneven_last_batch_is_used():
    # 10 examples in batches of 4: steps of 4, 4 and 2 examples; all 10 count in the epoch's loss
    X, y = blobs(n=10)
    net = small_net()
    theta0 = net.theta.copy()
    opt = get_optimizer("sgd", 0.1)
    Trainer(net, opt, epochs=1, batch_size=4, seed=0, verbose=0).fit(X, y)
    assert opt.t == 3

    manual = small_net()
    manual.theta[...] = theta0
    perm = np.random.default_rng(0).permutation(10)
    for start in (0, 4, 8):
        idx = perm[start:start + 4]
        _, cache = manual.forward_propagation(X[idx])
        g = np.empty(manual.n_params)
        manual.back_propagation(cache, y[idx], out=g)
        manual.theta -= 0.1 * g
    np.testing.assert_allclose(net.theta, manual.theta, rtol=1e-12, atol=1e-14)


def test_verbose_logs_one_line_per_epoch():
    X, y = blobs(n=30)
    lines = []
    small_net().fit(X, y, epochs=3, batch_size=10, validation_fraction=0.2, seed=0, verbose=1, log=lines.append)
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3") and "val_loss" in lines[0] and "acc" in lines[0]


@pytest.mark.parametrize("activation,optimizer,dtype,dropout", [
    ("tanh", "adam", "float32", 0.0), ("relu", "nadam", "float64", 0.2), ("logistic", "nag", "float32", 0.1),
    ("identity", "rmsprop", "float32", 0.0), ("relu", "sgd", "float32", 0.0),
])
def test_training_with_and_without_compiled_kernels_gives_identical_weights(activation, optimizer, dtype, dropout,
                                                                            monkeypatch):
    from ffnn import kernels

    if kernels.compiled is None:
        pytest.skip("ffnn was built without its C extension")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 12)).astype(dtype)
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(np.int64) + (X[:, 2] > 0.5)
    weights = {}
    for enabled in (True, False):
        monkeypatch.setattr(kernels, "ENABLED", enabled)
        net = ffnn.Network([12, 16, 8, 3], activation=activation, dtype=dtype, seed=1, dropout=dropout)
        history = net.fit(X, y, epochs=3, batch_size=32, optimizer=optimizer, learning_rate=0.01, seed=2,
                          validation_fraction=0.2, schedule="cosine", verbose=0)
        weights[enabled] = (net.theta.copy(), history["loss"], history["val_loss"])
    assert np.array_equal(weights[True][0], weights[False][0])
    assert weights[True][1:] == weights[False][1:]


# -- the Python API as scripts and notebooks use it ------------------------------------------------------------
def test_history_iterates_rows_and_indexes_epochs_and_columns():
    net = ffnn.Network([4, 5, 3], seed=0)
    X = np.random.default_rng(0).normal(size=(30, 4))
    history = net.fit(X, np.arange(30) % 3, epochs=3, batch_size=10, verbose=0, validation_fraction=0.2)
    rows = list(history)
    assert len(rows) == 3 and [r["epoch"] for r in rows] == [1, 2, 3]
    assert history[-1] == rows[-1] and history[0]["epoch"] == 1
    assert history["loss"] == [r["loss"] for r in rows] and "val_loss" in history and "nope" not in history
    with pytest.raises(KeyError, match="no column 'nope'"):
        history["nope"]
    with pytest.raises(IndexError):
        history[3]
    assert history[0:2] == rows[:2] and rows[0] not in history
    with pytest.raises(TypeError, match="a History takes a column name, an epoch's index or a slice"):
        history[1.5]
    pd = pytest.importorskip("pandas")
    assert list(pd.DataFrame(list(history))["epoch"]) == [1, 2, 3]


def test_fit_and_evaluate_take_pandas_columns():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 4)), columns=list("abcd"))
    y = pd.Series(np.arange(30) % 3)
    net = ffnn.Network([4, 5, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert set(net.evaluate(X, y)) == {"loss", "accuracy"}
    from ffnn.errors import DataError

    with pytest.raises(DataError, match="class labels must be integers"):
        net.fit(X, pd.Series(["x", "y", "z"] * 10), epochs=1, batch_size=10, verbose=0)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_predict_and_evaluate_refuse_a_bad_batch_size(batch_size):
    net = ffnn.Network([4, 3], seed=0)
    X = np.zeros((5, 4))
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        net.predict_proba(X, batch_size=batch_size)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        net.evaluate(X, np.zeros(5, int), batch_size=batch_size)


def test_back_propagation_and_loss_check_their_targets():
    from ffnn.errors import DataError

    net = ffnn.Network([4, 5, 3], dtype="float64", seed=0)
    _, cache = net.forward_propagation(np.ones((3, 4)))
    for y, words in (([0, 1, -1], "0..2"), ([0, 1, 5], "0..2"), ([0.5, 1, 2], "non-integer")):
        with pytest.raises(DataError, match=words):
            net.back_propagation(cache, y)
        with pytest.raises(DataError, match=words):
            net.loss(cache, y)
    expected = net.back_propagation(cache, np.array([0, 1, 2]))["W1"].copy()
    np.testing.assert_array_equal(net.back_propagation(cache, [0, 1, 2])["W1"], expected)  # a list, as labels
    np.testing.assert_array_equal(net.back_propagation(cache, [0.0, 1.0, 2.0])["W1"], expected)


def test_a_network_pickles_and_deep_copies_with_its_views():
    import copy
    import pickle

    net = ffnn.Network([4, 5, 3], seed=0, dropout=0.25, init="he")
    X = np.random.default_rng(1).normal(size=(6, 4))
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        np.testing.assert_array_equal(other.predict_proba(X), net.predict_proba(X))
        assert np.shares_memory(other.W[1], other.theta) and not np.shares_memory(other.theta, net.theta)
        other.fit(X, np.arange(6) % 3, epochs=1, batch_size=3, verbose=0)  # trains its own weights, through W
        assert not np.array_equal(other.theta, net.theta)
        assert repr(other) == repr(net) == ("Network([4, 5, 3], activation='tanh', output='softmax', "
                                            "loss='cross_entropy', dtype='float32', init='he', dropout=0.25)")


def test_copy_params_from_needs_the_same_sizes():
    with pytest.raises(ConfigError, match="cannot copy the parameters of a 2-1-4-2 network into a 2-4-1-2 one"):
        ffnn.Network([2, 4, 1, 2]).copy_params_from(ffnn.Network([2, 1, 4, 2]))


def test_numpy_scalars_are_numbers_everywhere():
    X = np.random.default_rng(0).normal(size=(20, 4))
    net = ffnn.Network([4, 5, 3], seed=0, dropout=np.float32(0.1), device="CPU")
    net.fit(X, np.arange(20) % 3, epochs=1, batch_size=5, verbose=0, weight_decay=np.float32(0.01),
            label_smoothing=np.float32(0.1), validation_fraction=np.float32(0.2), learning_rate=np.float32(0.01))
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        ffnn.Network([4, 3], seed=-1)


def test_fit_names_a_misspelt_argument_and_refuses_weighted_validation_data():
    net = ffnn.Network([4, 3], seed=0)
    X, y = np.zeros((6, 4)), np.arange(6) % 3
    with pytest.raises(ConfigError, match="fit\\(\\) got an unexpected argument 'validaton_fraction'"):
        net.fit(X, y, validaton_fraction=0.1, verbose=0)
    from ffnn.optimizers import Adam

    with pytest.raises(ConfigError, match="with an optimizer instance, its hyperparameters go to its constructor"):
        net.fit(X, y, optimizer=Adam(0.01), validaton_fraction=0.5, verbose=0)
    with pytest.raises(ConfigError, match="validation_data must be \\(X_val, y_val\\)"):
        net.fit(X, y, validation_data=(X, y, np.ones(6)), verbose=0)


def test_a_plain_function_is_an_end_of_epoch_callback():
    seen = []
    net = ffnn.Network([4, 3], seed=0)
    net.fit(np.zeros((6, 4)), np.arange(6) % 3, epochs=2, batch_size=3, verbose=0,
            callbacks=[lambda trainer, row: seen.append(row["epoch"])])
    assert seen == [1, 2]
    with pytest.raises(ConfigError, match="a callback is an object with on_epoch_begin"):
        net.fit(np.zeros((6, 4)), np.arange(6) % 3, epochs=1, verbose=0, callbacks=[42])


def test_a_trainer_used_alone_takes_inputs_of_another_dtype_as_fit_does():
    X, y = blobs()
    nets = [small_net(dtype="float32") for _ in range(2)]
    for net, inputs in zip(nets, (X, X.astype(np.float32))):  # float64 inputs to a float32 network, and float32
        Trainer(net, SGD(0.1), epochs=2, batch_size=16, seed=0, verbose=0).fit(inputs, y)
    np.testing.assert_array_equal(nets[0].theta, nets[1].theta)
    with pytest.raises(DataError, match="NaN"):
        Trainer(small_net(dtype="float32"), SGD(0.1), epochs=1, batch_size=16, verbose=0).fit(X * np.nan, y)


@pytest.mark.parametrize("X_change, y_change, message", [
    (lambda X: X[:, :3], None, "3 features; this network expects 4"),
    (lambda X: X[:, 0], None, "2-D array"),
    (lambda X: X.tolist(), None, None),
    (None, lambda y: y[:10], "y has 10 rows but X has 120"),
    (None, lambda y: y + 3, "labels must lie in 0..2"),
    (None, lambda y: y + 0.5, "integers 0..k-1"),
    (None, lambda y: y.tolist(), None),
    (lambda X: np.where(np.arange(len(X))[:, None] == 7, np.nan, X).astype(np.float32), None, "NaN or infinite"),
    # an infinity that tanh saturates: the loss stays finite until the weights it spoiled reach a later batch
    (lambda X: np.where((np.arange(len(X))[:, None] == 7) & (np.arange(4) == 2), np.inf, X).astype(np.float32), None,
     "NaN or infinite"),
])
def test_a_trainer_used_alone_checks_its_inputs_as_fit_does(X_change, y_change, message):
    X, y = blobs()
    X = X.astype(np.float32)
    X, y = (X_change or (lambda v: v))(X), (y_change or (lambda v: v))(y)
    net = small_net(dtype="float32")
    trainer = Trainer(net, SGD(0.1), epochs=2, batch_size=16, seed=0, verbose=0)
    start = net.theta.copy()
    if message is None:
        assert len(trainer.fit(X, y)) == 2
        return
    with pytest.raises(DataError, match=message):
        trainer.fit(X, y)
    np.testing.assert_array_equal(net.theta, start)  # nothing was changed
