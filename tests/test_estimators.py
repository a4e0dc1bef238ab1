import math
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_blobs, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from ffnn import Network
from ffnn.data import Scaling
from ffnn.errors import ConfigError, DataError
from ffnn.estimators import FFNNClassifier, FFNNRegressor, weighted_output_layer
from ffnn.gradcheck import check_gradients, random_problem
from ffnn.optimizers import get_optimizer
from ffnn.training import Trainer

# Quiet where a short max_iter is the point of the test.
no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# -- scikit-learn's own estimator checks ------------------------------------------------------------------------
@no_convergence_warning
@parametrize_with_checks([FFNNClassifier(max_iter=50), FFNNRegressor(max_iter=50),
                          FFNNClassifier(max_iter=50, lr_schedule="cosine", decoupled_weight_decay=True,
                                         label_smoothing=0.1),
                          FFNNRegressor(max_iter=50, lr_schedule="step", lr_schedule_params={"step_size": 5},
                                        decoupled_weight_decay=True)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# -- data ----------------------------------------------------------------------------------------------------
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def blobs(n=120, seed=0, std=2.5):
    X, y = make_blobs(n_samples=n, centers=[[-1, -1], [1, 1]], cluster_std=std, random_state=seed)
    return X, y


def regression(n=200, seed=0):
    X, y = make_regression(n_samples=n, n_features=5, noise=5.0, random_state=seed)
    return X, y


# -- per-example weights in the loss and grad_aL ----------------------------------------------------------------
def pack(targets, w):
    return np.column_stack([targets, w])


def test_weighted_squared_error_worked_by_hand():
    # y_hat = [1, 3], targets 0, weights [1, 3]: loss (1*1 + 3*9) / 4 = 7; d loss / d y_hat_i = 2 w_i y_hat_i / 4.
    layer = weighted_output_layer(Network([1, 1], output="linear", loss="squared_error").output_layer)
    a = np.array([[1.0], [3.0]])
    y = pack(np.zeros((2, 1)), [1.0, 3.0])
    assert layer.loss(a, a, y) == pytest.approx(7.0)
    np.testing.assert_allclose(layer.grad_a(a, a, y), [[0.5], [4.5]])


def test_weighted_cross_entropy_worked_by_hand():
    # a = [[0, 0], [0, ln 3]]: y_hat = [[1/2, 1/2], [1/4, 3/4]]; labels [0, 1], weights [2, 1].
    layer = weighted_output_layer(Network([1, 2]).output_layer)
    a = np.array([[0.0, 0.0], [0.0, math.log(3.0)]])
    y_hat = np.array([[0.5, 0.5], [0.25, 0.75]])
    y = pack(np.eye(2), [2.0, 1.0])
    assert layer.loss(a, y_hat, y) == pytest.approx((2 * math.log(2) - math.log(0.75)) / 3)
    # row i: w_i / sum(w) * (y_hat_i - e(l_i))
    np.testing.assert_allclose(layer.grad_a(a, y_hat, y), [[-1 / 3, 1 / 3], [1 / 12, -1 / 12]])


def test_weighted_cross_entropy_stays_finite_when_a_probability_underflows():
    layer = weighted_output_layer(Network([1, 2]).output_layer)
    a = np.array([[800.0, 0.0]])
    y_hat = np.array([[1.0, 0.0]])
    assert layer.loss(a, y_hat, pack(np.array([[0.0, 1.0]]), [1.0])) == pytest.approx(800.0)


@pytest.mark.parametrize("output, loss", [("softmax", "cross_entropy"), ("softmax", "squared_error"),
                                          ("linear", "squared_error")])
def test_weighted_gradient_matches_central_differences(output, loss):
    net, X, y = random_problem([3, 5, 4, 3], activation="tanh", output=output, loss=loss, batch=7, seed=4)
    targets = np.eye(3)[y] if y.ndim == 1 else y
    w = np.array([0.0, 1.0, 2.5, 0.3, 4.0, 1.0, 0.0])
    net.output_layer = weighted_output_layer(net.output_layer)
    errors = check_gradients(net, X, pack(targets, w))
    assert max(errors.values()) < 1e-6, errors


def test_unit_weights_give_the_core_loss_and_gradient():
    net, X, y = random_problem([3, 4, 3], batch=6, seed=2)
    y_hat, cache = net.forward_propagation(X)
    core_loss, core_grad = net.loss(cache, y), net.back_propagation(cache, y)["W1"].copy()
    net.output_layer = weighted_output_layer(net.output_layer)
    packed = pack(np.eye(3)[y], np.ones(6))
    assert net.loss(cache, packed) == pytest.approx(core_loss, rel=1e-12)
    np.testing.assert_allclose(net.back_propagation(cache, packed)["W1"], core_grad, rtol=1e-12)


# -- sample_weight in fit ----------------------------------------------------------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("Estimator, data", [(FFNNClassifier, blobs), (FFNNRegressor, regression)])
def test_sample_weight_of_ones_changes_nothing(Estimator, data):
    X, y = data(60)
    est = Estimator(hidden_layer_sizes=(8,), max_iter=20, batch_size=16, random_state=0)
    a = clone(est).fit(X, y).predict(X)
    b = clone(est).fit(X, y, sample_weight=np.ones(len(y))).predict(X)
    np.testing.assert_array_equal(a, b)


@no_convergence_warning
@pytest.mark.parametrize("Estimator, data", [(FFNNClassifier, blobs), (FFNNRegressor, regression)])
def test_integer_weights_equal_repeated_rows_and_zero_weights_equal_removed_rows(Estimator, data):
    X, y = data(30)
    w = np.random.default_rng(0).integers(0, 4, size=30)
    # Full-batch steps, so the order of the examples does not matter.
    est = Estimator(hidden_layer_sizes=(8,), max_iter=30, batch_size=500, n_iter_no_change=100, random_state=0)
    weighted = clone(est).fit(X, y, sample_weight=w)
    repeated = clone(est).fit(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0))
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)


@no_convergence_warning
def test_only_the_ratios_of_the_weights_matter():
    X, y = regression(50)
    w = np.random.default_rng(1).uniform(0.1, 2, size=50)
    est = FFNNRegressor(hidden_layer_sizes=(8,), max_iter=15, batch_size=10, random_state=0)
    a = clone(est).fit(X, y, sample_weight=w).predict(X)
    b = clone(est).fit(X, y, sample_weight=7 * w).predict(X)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@no_convergence_warning
def test_heavier_weights_pull_predictions_towards_their_class():
    X, y = blobs(200, std=3.0)
    est = FFNNClassifier(hidden_layer_sizes=(8,), random_state=0)
    plain = clone(est).fit(X, y).predict(X).mean()
    heavy_one = clone(est).fit(X, y, sample_weight=np.where(y == 1, 10.0, 1.0)).predict(X).mean()
    assert heavy_one > plain + 0.1


@pytest.mark.parametrize("w, match", [(-1.0, "non-negative"), (0.0, "zero"), (np.nan, "finite|NaN")])
def test_bad_sample_weights_are_refused(w, match):
    X, y = blobs(20)
    weights = np.ones(20)
    weights[:] = 0.0 if w == 0.0 else 1.0
    weights[3] = w
    with pytest.raises(ValueError, match=match):
        FFNNClassifier(max_iter=2).fit(X, y, sample_weight=weights)


# -- classes, targets, predictions -------------------------------------------------------------------------------
@no_convergence_warning
def test_string_labels_round_trip():
    X, y = iris()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = FFNNClassifier(random_state=0).fit(X, names)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert set(clf.predict(X)) <= set(clf.classes_)
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, names) > 0.95


def test_binary_problem_has_two_probability_columns():
    X, y = blobs()
    clf = FFNNClassifier(random_state=0).fit(X, y + 5)
    assert clf.classes_.tolist() == [5, 6]
    assert clf.predict_proba(X).shape == (len(y), 2)
    assert clf.network_.sizes == [2, 100, 2]


def test_one_class_is_refused_with_a_message_about_classes():
    with pytest.raises(ValueError, match="two classes"):
        FFNNClassifier().fit(np.zeros((5, 2)), np.ones(5))


@no_convergence_warning
def test_a_refused_refit_leaves_the_fitted_classifier_as_it_was():
    pd = pytest.importorskip("pandas")
    X, y = iris()
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = FFNNClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(frame, names)
    proba, curve = clf.predict_proba(frame), list(clf.loss_curve_)
    with pytest.raises(DataError, match="two classes"):
        clf.fit(X, np.zeros(150))
    with pytest.raises(ValueError, match="3 features"):  # classes 0..2 and n_features_in_ 4 set before the check
        clf.fit(X, y, validation_data=(X[:, :3], y))
    with pytest.raises(ValueError, match="2 features"):  # X of 3 features, its validation set of 2
        clf.fit(X[:, :3], y, validation_data=(X[:, :2], y))
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert clf.n_features_in_ == 4 and clf.feature_names_in_.tolist() == ["sl", "sw", "pl", "pw"]
    assert clf.loss_curve_ == curve and clf.n_iter_ == 5
    np.testing.assert_array_equal(clf.predict_proba(frame), proba)
    np.testing.assert_array_equal(clf.predict(frame), clf.classes_[proba.argmax(axis=1)])
    assert clf.network_.metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    # refused later, when the training is set up: a callback that is none
    with pytest.raises(ConfigError, match="a callback is an object"):
        clf.fit(frame, names, callbacks=[42])
    clf.set_params(warm_start=True, activation="tanh")
    with pytest.raises(ConfigError, match="a callback is an object"):
        clf.fit(frame, names, callbacks=[42])
    assert clf.loss_curve_ == curve and clf.n_iter_ == 5 and clf.network_.activation.name == "relu"
    np.testing.assert_array_equal(clf.predict_proba(frame), proba)


@no_convergence_warning
def test_dropout_needs_a_hidden_layer_and_dtype_takes_numpy_types():
    X, y = iris()
    with pytest.raises(ConfigError, match="hidden_layer_sizes=\\(\\) gives none"):
        FFNNClassifier(hidden_layer_sizes=(), dropout=0.5, max_iter=2).fit(X, y)
    clf = FFNNClassifier(hidden_layer_sizes=(4,), dtype=np.float32, max_iter=2, random_state=0).fit(X, y)
    assert clf.network_.dtype == np.float32


def test_a_fit_stopped_by_an_error_counts_the_epochs_it_finished():
    def fail_in_epoch_3(trainer, row):
        if row["epoch"] == 3:
            raise RuntimeError("stop")

    X, y = regression(60)
    reg = FFNNRegressor(hidden_layer_sizes=(8,), max_iter=10, batch_size=8, random_state=0)
    with pytest.raises(RuntimeError, match="stop"):
        reg.fit(X, y, callbacks=[fail_in_epoch_3])
    assert reg.n_iter_ == len(reg.loss_curve_) == 3 and reg.t_ == 3 * 60


@no_convergence_warning
def test_a_refused_refit_leaves_the_fitted_regressor_as_it_was():
    X, y = regression(60)
    reg = FFNNRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    pred, y_mean, y_scale = reg.predict(X), reg._y_mean.copy(), reg._y_scale.copy()
    with pytest.raises(ValueError, match="3 features"):
        reg.fit(X, y * 1000, validation_data=(X[:, :3], y))
    with pytest.raises(ValueError, match="random_state"):  # the seed is read after the targets' scaling
        reg.set_params(random_state="seed").fit(X[:, :4], np.column_stack([y, y]) * 1000)
    np.testing.assert_array_equal(reg._y_mean, y_mean)
    np.testing.assert_array_equal(reg._y_scale, y_scale)
    assert reg.n_features_in_ == 5 and reg.network_.metadata["target_scaling"]["offset"] == y_mean.tolist()
    np.testing.assert_array_equal(reg.predict(X), pred)


def test_regressor_predicts_in_the_units_of_y():
    X, y = regression(300)
    y_big = 1000 * y + 5e4
    reg = FFNNRegressor(random_state=0).fit(X, y_big)
    pred = reg.predict(X)
    assert pred.shape == (300,)
    assert r2_score(y_big, pred) > 0.95
    assert abs(pred.mean() - y_big.mean()) < 0.05 * y_big.std()


def test_regressor_with_several_outputs():
    X, y = regression(200)
    Y = np.column_stack([y, -2 * y + 3])
    reg = FFNNRegressor(random_state=0).fit(X, Y)
    assert reg.network_.sizes[-1] == 2
    assert reg.predict(X).shape == (200, 2)
    assert reg.score(X, Y) > 0.9


@no_convergence_warning
def test_features_are_used_as_given():
    X, y = blobs()
    a = FFNNClassifier(max_iter=5, random_state=0).fit(X, y).predict_proba(X)
    b = FFNNClassifier(max_iter=5, random_state=0).fit(10 * X, y).predict_proba(10 * X)
    assert not np.allclose(a, b)


@no_convergence_warning
def test_feature_names_are_recorded():
    pd = pytest.importorskip("pandas")
    X, y = iris()
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    clf = FFNNClassifier(max_iter=5, random_state=0).fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["sl", "sw", "pl", "pw"]
    assert clf.n_features_in_ == 4


@no_convergence_warning
def test_float32_networks():
    X, y = iris()
    clf = FFNNClassifier(dtype="float32", random_state=0).fit(X, y)
    assert clf.network_.dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float64
    assert clf.score(X, y) > 0.95


@no_convergence_warning
def test_same_random_state_same_model_and_another_one_differs():
    X, y = blobs()
    a = FFNNClassifier(max_iter=10, random_state=3).fit(X, y).predict_proba(X)
    b = FFNNClassifier(max_iter=10, random_state=3).fit(X, y).predict_proba(X)
    c = FFNNClassifier(max_iter=10, random_state=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@no_convergence_warning
def test_network_is_an_ffnn_network_that_saves(tmp_path):
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(16, 8), activation="tanh", init="xavier", random_state=0).fit(X, y)
    net = clf.network_
    assert net.sizes == [4, 16, 8, 3] and net.activation.name == "tanh" and net.init == "xavier"
    net.save(tmp_path / "iris.safetensors")
    loaded = Network.load(tmp_path / "iris.safetensors")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def outputs_as_ffnn_predict_sees_them(path, X):
    """A saved network's outputs in the units of y, from the file alone: its feature scaling applied to X, its
    target scaling (if any) to y_hat."""
    net = Network.load(path)
    meta = net.metadata
    if meta["scaling"]:
        X = Scaling.from_dict(meta["scaling"]).transform(X)
    y_hat = net.predict_proba(X.astype(net.dtype))
    if meta["target_scaling"]:
        y_hat = Scaling.from_dict(meta["target_scaling"]).inverse_transform(y_hat)
    return meta, y_hat


@no_convergence_warning
def test_a_saved_classifier_network_names_its_classes_and_features(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = iris()
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = FFNNClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(frame, names)
    clf.network_.save(tmp_path / "iris.safetensors")
    meta, proba = outputs_as_ffnn_predict_sees_them(tmp_path / "iris.safetensors", X)
    assert meta == {"task": "classification", "class_names": ["setosa", "versicolor", "virginica"],
                    "feature_names": ["sl", "sw", "pl", "pw"], "scaling": None, "target_scaling": None}
    np.testing.assert_array_equal(proba, clf.predict_proba(frame))
    np.testing.assert_array_equal(np.array(meta["class_names"])[proba.argmax(axis=1)], clf.predict(frame))
    # Numeric labels are stored as strings, as ffnn's own models store them.
    clf.fit(X, y + 5)
    assert clf.network_.metadata["class_names"] == ["5", "6", "7"]
    assert clf.network_.metadata["feature_names"] is None


@no_convergence_warning
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_a_saved_regressor_network_maps_its_outputs_back_to_the_units_of_y(tmp_path, n_outputs):
    X, y = regression(60)
    Y = 1000 * y + 5e4 if n_outputs == 1 else np.column_stack([1000 * y + 5e4, -3 * y])
    reg = FFNNRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, Y)
    reg.network_.save(tmp_path / "reg.safetensors")
    meta, y_hat = outputs_as_ffnn_predict_sees_them(tmp_path / "reg.safetensors", X)
    assert meta["task"] == "regression" and meta["class_names"] is None and meta["scaling"] is None
    assert meta["target_scaling"] == {"offset": reg._y_mean.tolist(), "scale": reg._y_scale.tolist()}
    assert len(meta["target_scaling"]["offset"]) == n_outputs and meta["target_scaling"]["scale"][0] > 100
    np.testing.assert_array_equal(y_hat[:, 0] if n_outputs == 1 else y_hat, reg.predict(X))


# -- the training loop: curves, convergence, early stopping, validation ------------------------------------------
def test_loss_curve_and_convergence():
    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X[:500]), y[:500]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = FFNNClassifier(random_state=0).fit(X, y)
    assert 1 <= clf.n_iter_ < 200
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.t_ == clf.n_iter_ * len(y)
    assert clf.loss_curve_[-1] < 0.3 * clf.loss_curve_[0]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_loss_curve_ is None and clf.validation_scores_ is None


def test_reaching_max_iter_warns():
    X, y = iris()
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        FFNNClassifier(max_iter=3, random_state=0).fit(X, y)


@no_convergence_warning
def test_validation_data_gives_curves_that_match_the_final_model():
    X, y = make_classification(n_samples=300, n_features=8, n_informative=4, n_classes=3, random_state=0)
    X_tr, y_tr, X_val, y_val = X[:200], y[:200], X[200:], y[200:]
    clf = FFNNClassifier(hidden_layer_sizes=(16,), max_iter=15, random_state=0)
    clf.fit(X_tr, y_tr, validation_data=(X_val, y_val))
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == len(clf.loss_curve_) == 15
    proba = clf.predict_proba(X_val)
    assert clf.validation_loss_curve_[-1] == pytest.approx(log_loss(y_val, proba, labels=clf.classes_), rel=1e-9)
    assert clf.validation_scores_[-1] == pytest.approx(clf.score(X_val, y_val))


@no_convergence_warning
def test_weighted_validation_data():
    X, y = make_classification(n_samples=300, n_features=8, random_state=1)
    w_val = np.random.default_rng(0).uniform(0, 3, size=100)
    clf = FFNNClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    clf.fit(X[:200], y[:200], validation_data=(X[200:], y[200:], w_val))
    proba = clf.predict_proba(X[200:])
    assert clf.validation_loss_curve_[-1] == pytest.approx(log_loss(y[200:], proba, sample_weight=w_val), rel=1e-9)
    assert clf.validation_scores_[-1] == pytest.approx(clf.score(X[200:], y[200:], sample_weight=w_val))


@no_convergence_warning
def test_regressor_validation_score_is_r2_in_the_units_of_y():
    X, y = regression(300)
    reg = FFNNRegressor(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    reg.fit(X[:200], 50 * y[:200] + 7, validation_data=(X[200:], 50 * y[200:] + 7))
    assert reg.validation_scores_[-1] == pytest.approx(reg.score(X[200:], 50 * y[200:] + 7), rel=1e-9)


def test_early_stopping_on_user_validation_data_keeps_the_best_epoch():
    # Noisy labels and a wide network: the validation loss turns up while the training loss keeps falling.
    X, y = make_classification(n_samples=300, n_features=20, n_informative=3, flip_y=0.3, random_state=0)
    clf = FFNNClassifier(hidden_layer_sizes=(200,), learning_rate=1e-2, weight_decay=0.0, early_stopping=True,
                         n_iter_no_change=5, max_iter=200, random_state=0)
    clf.fit(X[:200], y[:200], validation_data=(X[200:], y[200:]))
    curve = clf.validation_loss_curve_
    best = int(np.argmin(curve))
    assert clf.n_iter_ < 200
    assert clf.n_iter_ == best + 1 + 5
    assert clf.best_loss_ == curve[best]
    # The weights kept are those of the best epoch, not the last one.
    assert log_loss(y[200:], clf.predict_proba(X[200:])) == pytest.approx(curve[best], rel=1e-9)
    assert clf.best_validation_score_ == clf.validation_scores_[best]


def test_early_stopping_holds_out_validation_fraction():
    X, y = make_classification(n_samples=300, n_features=20, n_informative=3, flip_y=0.3, random_state=0)
    clf = FFNNClassifier(hidden_layer_sizes=(64,), early_stopping=True, validation_fraction=0.2,
                         random_state=0).fit(X, y)
    assert len(clf.validation_loss_curve_) == clf.n_iter_
    assert clf.best_loss_ == min(clf.validation_loss_curve_)
    assert clf.t_ == clf.n_iter_ * 240


@no_convergence_warning
def test_dropout_trains_with_masks_and_predicts_with_every_unit():
    X, y = iris()
    params = dict(hidden_layer_sizes=(64,), learning_rate=1e-2, max_iter=60, random_state=0)
    dropped = FFNNClassifier(dropout=0.5, **params).fit(X, y)
    plain = FFNNClassifier(**params).fit(X, y)
    assert dropped.network_.dropout == 0.5
    assert not np.allclose(dropped.predict_proba(X), plain.predict_proba(X))
    np.testing.assert_array_equal(dropped.predict_proba(X), dropped.predict_proba(X))
    # The training loss is measured under dropout, so it stays above the loss of the full network.
    assert dropped.loss_curve_[-1] > log_loss(y, dropped.predict_proba(X))
    assert dropped.score(X, y) > 0.9


def test_callbacks_see_the_trainer_and_can_stop_training():
    X, y = blobs()
    seen = []

    class StopAfterThree:
        def on_epoch_end(self, trainer, row):
            seen.append((trainer.net, row["epoch"], row["loss"]))
            if row["epoch"] == 3:
                trainer.stop_training = True

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopped by the callback, not by max_iter
        clf = FFNNClassifier(random_state=0).fit(X, y, callbacks=[StopAfterThree()])
    assert clf.n_iter_ == 3
    assert [e for _, e, _ in seen] == [1, 2, 3]
    assert all(net is clf.network_ for net, _, _ in seen)
    assert [loss for _, _, loss in seen] == clf.loss_curve_


@no_convergence_warning
def test_callbacks_none_means_no_callbacks():
    X, y = blobs()
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with_none = FFNNClassifier(**params).fit(X, y, callbacks=None)
    assert with_none.loss_curve_ == FFNNClassifier(**params).fit(X, y).loss_curve_


@no_convergence_warning
def test_verbose_shows_a_progress_bar(capsys):
    X, y = blobs()
    FFNNClassifier(max_iter=4, n_iter_no_change=50, random_state=0, verbose=1).fit(
        X, y, validation_data=(X, y))
    err = capsys.readouterr().err
    assert "FFNNClassifier" in err and "4/4" in err and "val_loss" in err


@no_convergence_warning
def test_silent_by_default(capsys):
    X, y = blobs()
    FFNNClassifier(max_iter=4, random_state=0).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# -- partial_fit and warm_start -----------------------------------------------------------------------------------
def test_partial_fit_runs_one_epoch_per_call():
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(16,), learning_rate=1e-2, random_state=0)
    with pytest.raises(DataError, match="classes="):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    for i in range(2, 31):
        clf.partial_fit(X, y)
        assert clf.n_iter_ == i
    assert len(clf.loss_curve_) == 30
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[1]
    assert clf.score(X, y) > 0.9
    with pytest.raises(DataError, match="not seen"):
        clf.partial_fit(X[:3], [0, 1, 7])
    with pytest.raises(DataError, match="differs"):
        clf.partial_fit(X, y, classes=[0, 1])


@no_convergence_warning
def test_partial_fit_calls_continue_one_run_exactly():
    # The optimizer's moments and the shuffling generator carry over: three calls are one three-epoch fit.
    X, y = iris()
    params = dict(hidden_layer_sizes=(16,), batch_size=32, random_state=0)
    fitted = FFNNClassifier(max_iter=3, **params).fit(X, y)
    stepped = FFNNClassifier(**params)
    for _ in range(3):
        stepped.partial_fit(X, y, classes=[0, 1, 2])
    assert stepped.loss_curve_ == fitted.loss_curve_
    np.testing.assert_array_equal(stepped.predict_proba(X), fitted.predict_proba(X))


def test_regressor_partial_fit():
    X, y = regression(200)
    reg = FFNNRegressor(random_state=0)
    for _ in range(30):
        reg.partial_fit(X, y)
    assert reg.n_iter_ == 30
    assert reg.score(X, y) > 0.8


@no_convergence_warning
def test_warm_start_continues_from_the_current_weights():
    X, y = iris()
    params = dict(hidden_layer_sizes=(16,), max_iter=5, n_iter_no_change=100, random_state=0)
    warm = FFNNClassifier(warm_start=True, **params).fit(X, y)
    first = list(warm.loss_curve_)
    warm.fit(X, y)
    assert warm.n_iter_ == 10 and warm.loss_curve_[:5] == first
    assert warm.loss_curve_[5] < first[0]
    cold = FFNNClassifier(**params).fit(X, y)
    cold.fit(X, y)
    assert cold.n_iter_ == 5 and cold.loss_curve_ == first


@no_convergence_warning
@pytest.mark.parametrize("change", [{"hidden_layer_sizes": (8,)}, {"hidden_layer_sizes": (16, 16)},
                                    {"dtype": "float32"}])
def test_warm_start_refuses_a_change_the_weights_cannot_follow(change):
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(16,), max_iter=3, warm_start=True, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    name = next(iter(change))
    clf.set_params(**change)
    with pytest.raises(ValueError, match=f"{name}.*warm_start=False"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match=name):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 3 and clf.network_.sizes == [4, 16, 3] and clf.network_.dtype == np.float64
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    # Without warm_start, fit starts a new network as the parameters say.
    clf.set_params(warm_start=False).fit(X, y)
    new = FFNNClassifier(**clf.get_params()).fit(X, y)
    assert clf.network_.config == new.network_.config and clf.n_iter_ == 3
    np.testing.assert_array_equal(clf.predict_proba(X), new.predict_proba(X))


@no_convergence_warning
def test_warm_start_applies_a_new_activation_to_the_current_weights():
    # As scikit-learn's MLP does: the weights carry over and the network computes with the new g.
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(16,), max_iter=3, n_iter_no_change=100, warm_start=True,
                         random_state=0).fit(X, y)
    first = list(clf.loss_curve_)
    clf.set_params(activation="tanh").fit(X, y)
    assert clf.network_.activation.name == "tanh" and clf.network_.config["activation"] == "tanh"
    assert clf.n_iter_ == 6 and clf.loss_curve_[:3] == first
    tanh = Network([4, 16, 3], activation="tanh", dtype="float64")
    tanh.copy_params_from(clf.network_)
    np.testing.assert_array_equal(clf.predict_proba(X), tanh.predict_proba(X))


@no_convergence_warning
def test_validation_curves_stay_as_long_as_the_loss_curve():
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(8,), max_iter=2, n_iter_no_change=100, warm_start=True,
                         random_state=0)
    clf.fit(X, y)
    assert clf.validation_loss_curve_ is None
    clf.fit(X, y, validation_data=(X, y))   # epochs 1-2 had no validation set
    clf.fit(X, y)                           # nor do epochs 5-6
    clf.partial_fit(X, y)                   # nor 7
    for curve in (clf.validation_loss_curve_, clf.validation_scores_):
        assert len(curve) == len(clf.loss_curve_) == clf.n_iter_ == 7
        assert all(isinstance(v, float) for v in curve)
        np.testing.assert_array_equal(np.isnan(curve), [True, True, False, False, True, True, True])


@no_convergence_warning
def test_partial_fit_after_early_stopping_keeps_the_curves_aligned():
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(8,), max_iter=5, early_stopping=True, random_state=0).fit(X, y)
    n = clf.n_iter_
    clf.partial_fit(X, y)
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == len(clf.loss_curve_) == n + 1
    assert math.isnan(clf.validation_loss_curve_[-1]) and not math.isnan(clf.validation_loss_curve_[-2])


# -- scikit-learn tools ----------------------------------------------------------------------------------------
@no_convergence_warning
def test_pipeline_grid_search_and_cross_validation():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), FFNNClassifier(max_iter=50, random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.85
    grid = GridSearchCV(pipe, {"ffnnclassifier__hidden_layer_sizes": [(4,), (16,)],
                               "ffnnclassifier__activation": ["relu", "tanh"]}, cv=3).fit(X, y)
    assert grid.best_params_["ffnnclassifier__hidden_layer_sizes"] in [(4,), (16,)]
    assert grid.score(X, y) > 0.9
    assert grid.best_estimator_[-1].network_.sizes[1] == grid.best_params_["ffnnclassifier__hidden_layer_sizes"][0]


def test_joblib_round_trip_keeps_predictions_and_training_state(tmp_path):
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(16,), random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert isinstance(loaded.network_, Network) and loaded.network_ is not clf.network_
    # The optimizer's state and the shuffling generator travel too: both continue identically.
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@no_convergence_warning
def test_regressor_pickles(tmp_path):
    X, y = regression(100)
    reg = FFNNRegressor(max_iter=20, random_state=0).fit(X, 3 * y + 1)
    joblib.dump(reg, tmp_path / "reg.joblib")
    loaded = joblib.load(tmp_path / "reg.joblib")
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))


# -- parameters ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, match", [
    ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": "100"}, "hidden_layer_sizes"),
    ({"activation": "swish"}, "unknown activation"),
    ({"optimizer": "lbfgs"}, "unknown optimizer"),
    ({"optimizer_params": {"momentum": 0.9}}, "does not take momentum"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"max_iter": 1.5}, "max_iter"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"dropout": 1.0}, "dropout"),
    ({"init": "orthogonal"}, "unknown init"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"n_iter_no_change": 0}, "n_iter_no_change"),
    ({"dtype": "float16"}, "dtype"),
    ({"random_state": "seed"}, "random_state"),
    ({"lr_schedule": "linear"}, "lr_schedule must be one of constant"),
    ({"lr_schedule": None}, "lr_schedule"),
    ({"lr_schedule_params": [0.5]}, "lr_schedule_params must be a dict"),
    ({"lr_schedule_params": {"gamma": 0.5}}, "constant schedule does not take 'gamma'"),
    ({"lr_schedule_params": {"min_factor": 0.1}, "lr_schedule": "step"}, "step schedule does not take"),
    ({"lr_schedule_params": {"gamma": 1.5}, "lr_schedule": "exponential"}, "gamma"),
    ({"lr_schedule_params": {"gamma": 0}, "lr_schedule": "plateau"}, "gamma"),
    ({"lr_schedule_params": {"step_size": 0}, "lr_schedule": "step"}, "step_size"),
    ({"lr_schedule_params": {"patience": 1.5}, "lr_schedule": "plateau"}, "patience"),
    ({"lr_schedule_params": {"epochs": 0}, "lr_schedule": "cosine"}, "epochs"),
    ({"lr_schedule_params": {"min_factor": 2.0}, "lr_schedule": "cosine"}, "min_factor"),
    ({"decoupled_weight_decay": "yes"}, "decoupled_weight_decay"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"label_smoothing": "0.1"}, "label_smoothing"),
])
def test_bad_parameters_are_refused_at_fit(params, match):
    clf = FFNNClassifier(**params)  # __init__ only stores
    assert clf.get_params()[next(iter(params))] is next(iter(params.values()))
    with pytest.raises(ConfigError, match=match):
        clf.fit(*blobs(20))


@no_convergence_warning
def test_no_hidden_layer_is_allowed():
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(), learning_rate=0.05, random_state=0).fit(X, y)
    assert clf.network_.sizes == [4, 3]
    assert clf.score(X, y) > 0.9


def test_regressor_refuses_bad_schedules_and_has_no_label_smoothing():
    with pytest.raises(ConfigError, match="lr_schedule"):
        FFNNRegressor(lr_schedule="warmup").fit(*regression(20))
    with pytest.raises(ConfigError, match="decoupled_weight_decay"):
        FFNNRegressor(decoupled_weight_decay=1).fit(*regression(20))
    assert "label_smoothing" not in FFNNRegressor().get_params()
    with pytest.raises(TypeError):
        FFNNRegressor(label_smoothing=0.1)


# -- learning-rate schedules -------------------------------------------------------------------------------------
class RecordRates:
    def __init__(self):
        self.rates = []

    def on_epoch_end(self, trainer, row):
        self.rates.append(row["learning_rate"])


@pytest.mark.parametrize("schedule, params, rate", [
    ("constant", None, lambda t: 1.0),
    ("step", {"step_size": 2, "gamma": 0.5}, lambda t: 0.5 ** (t // 2)),
    ("exponential", {"gamma": 0.8}, lambda t: 0.8 ** t),
    ("cosine", None, lambda t: (1 + math.cos(math.pi * t / 6)) / 2),  # over max_iter = 6 epochs
    ("cosine", {"min_factor": 0.2}, lambda t: 0.2 + 0.8 * (1 + math.cos(math.pi * t / 6)) / 2),
    ("cosine", {"epochs": 3}, lambda t: (1 + math.cos(math.pi * min(t, 3) / 3)) / 2),
])
@no_convergence_warning
@pytest.mark.parametrize("Estimator, data", [(FFNNClassifier, blobs), (FFNNRegressor, regression)])
def test_schedule_sets_the_learning_rate_of_every_epoch(Estimator, data, schedule, params, rate):
    record = RecordRates()
    est = Estimator(hidden_layer_sizes=(4,), optimizer="sgd", learning_rate=0.1, max_iter=6, n_iter_no_change=100,
                    lr_schedule=schedule, lr_schedule_params=params, random_state=0)
    est.fit(*data(60), callbacks=[record])
    np.testing.assert_allclose(record.rates, [0.1 * rate(t) for t in range(6)], rtol=1e-12)
    assert est.lr_schedule_params is params  # not modified by fit


@no_convergence_warning
def test_schedule_changes_the_trained_model():
    X, y = iris()
    params = dict(hidden_layer_sizes=(8,), optimizer="sgd", learning_rate=0.1, max_iter=5, random_state=0)
    constant = FFNNClassifier(**params).fit(X, y)
    decayed = FFNNClassifier(lr_schedule="exponential", lr_schedule_params={"gamma": 0.5}, **params).fit(X, y)
    assert constant.loss_curve_[0] == decayed.loss_curve_[0]  # epoch 0 runs at the base rate in both
    assert constant.loss_curve_[1:] != decayed.loss_curve_[1:]


def plateau_rates(losses, base, gamma, patience, min_factor):
    # ffnn.schedules.Plateau re-derived: the rate of epoch t + 1 follows the losses of epochs 0..t.
    factor, best, wait, rates = 1.0, math.inf, 0, [base]
    for loss in losses[:-1]:
        if loss < best:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience:
                factor, wait = max(factor * gamma, min_factor), 0
        rates.append(base * factor)
    return rates


@no_convergence_warning
def test_plateau_follows_the_validation_loss():
    X, y = iris()
    rng = np.random.default_rng(0)
    # Validation labels unrelated to X: the validation loss soon stops improving while training goes on.
    X_val, y_val = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    record = RecordRates()
    clf = FFNNClassifier(hidden_layer_sizes=(16,), optimizer="sgd", learning_rate=0.2, max_iter=15,
                         n_iter_no_change=100, lr_schedule="plateau",
                         lr_schedule_params={"patience": 2, "gamma": 0.5, "min_factor": 0.1}, random_state=0)
    clf.fit(X, y, validation_data=(X_val, y_val), callbacks=[record])
    expected = plateau_rates(clf.validation_loss_curve_, 0.2, 0.5, 2, 0.1)
    np.testing.assert_allclose(record.rates, expected, rtol=1e-12)
    assert min(record.rates) < 0.2


@no_convergence_warning
def test_plateau_without_validation_follows_the_training_loss():
    X, y = iris()
    record = RecordRates()
    clf = FFNNClassifier(hidden_layer_sizes=(16,), optimizer="sgd", learning_rate=5.0, max_iter=15,
                         n_iter_no_change=100, lr_schedule="plateau",
                         lr_schedule_params={"patience": 1, "gamma": 0.5}, random_state=0)
    clf.fit(X, y, callbacks=[record])
    expected = plateau_rates(clf.loss_curve_, 5.0, 0.5, 1, 1e-3)
    np.testing.assert_allclose(record.rates, expected, rtol=1e-12)
    assert min(record.rates) < 5.0


@no_convergence_warning
@pytest.mark.parametrize("schedule, params", [("step", {"step_size": 1, "gamma": 0.5}), ("cosine", None),
                                              ("exponential", {"gamma": 0.7})])
def test_partial_fit_uses_the_rate_of_epoch_n_iter(schedule, params):
    # Each partial_fit call runs the epoch n_iter_ of the schedule, so three calls are one three-epoch fit.
    X, y = iris()
    est = dict(hidden_layer_sizes=(16,), batch_size=32, max_iter=3, lr_schedule=schedule,
               lr_schedule_params=params, random_state=0)
    fitted = FFNNClassifier(**est).fit(X, y)
    stepped = FFNNClassifier(**est)
    for _ in range(3):
        stepped.partial_fit(X, y, classes=[0, 1, 2])
    assert stepped.loss_curve_ == fitted.loss_curve_
    np.testing.assert_array_equal(stepped.predict_proba(X), fitted.predict_proba(X))
    constant = FFNNClassifier(**{**est, "lr_schedule": "constant", "lr_schedule_params": None})
    for _ in range(3):
        constant.partial_fit(X, y, classes=[0, 1, 2])
    assert constant.loss_curve_[2] != stepped.loss_curve_[2]


@no_convergence_warning
def test_warm_start_fit_restarts_the_schedule():
    X, y = iris()
    record = RecordRates()
    clf = FFNNClassifier(hidden_layer_sizes=(8,), max_iter=3, n_iter_no_change=100, warm_start=True,
                         lr_schedule="exponential", lr_schedule_params={"gamma": 0.5}, random_state=0)
    clf.fit(X, y, callbacks=[record])
    clf.fit(X, y, callbacks=[record])
    np.testing.assert_allclose(record.rates, [3e-3, 1.5e-3, 7.5e-4] * 2)


# -- decoupled weight decay --------------------------------------------------------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("decoupled", [True, False])
def test_weight_decay_of_one_full_batch_sgd_epoch_by_hand(decoupled):
    X, y = iris()
    eta, lam = 0.5, 0.1
    clf = FFNNClassifier(hidden_layer_sizes=(5,), activation="tanh", init="xavier", optimizer="sgd",
                         learning_rate=eta, batch_size=X.shape[0], max_iter=1, weight_decay=lam,
                         decoupled_weight_decay=decoupled, random_state=0).fit(X, y)
    # The same initial weights: the estimator seeds its Network with default_rng(random_state).
    net = Network([4, 5, 3], activation="tanh", output="softmax", loss="cross_entropy", init="xavier",
                  dtype="float64", seed=np.random.default_rng(0))
    _, cache = net.forward_propagation(X)
    grad = np.empty(net.n_params)
    net.back_propagation(cache, y, out=grad)
    theta, n_w = net.theta.copy(), net.n_weights
    if decoupled:
        # W <- (W - eta grad_W) (1 - eta lambda); b <- b - eta grad_b
        expected = theta - eta * grad
        expected[:n_w] *= 1 - eta * lam
    else:
        # L2: W <- W - eta (grad_W + lambda W)
        expected = theta - eta * grad
        expected[:n_w] -= eta * lam * theta[:n_w]
    np.testing.assert_allclose(clf.network_.theta, expected, rtol=1e-10, atol=1e-12)


@no_convergence_warning
def test_decoupled_weight_decay_follows_the_scheduled_rate():
    # Epoch 1 of a step schedule runs at eta_1 = eta / 2 and decays by 1 - eta_1 lambda: start it from the weights
    # of a one-epoch fit with the same seed.
    X, y = iris()
    params = dict(hidden_layer_sizes=(), optimizer="sgd", batch_size=X.shape[0], weight_decay=0.2,
                  decoupled_weight_decay=True, learning_rate=0.5, random_state=0)
    one = FFNNClassifier(max_iter=1, **params).fit(X, y)
    two = FFNNClassifier(max_iter=2, lr_schedule="step", lr_schedule_params={"step_size": 1, "gamma": 0.5},
                         **params).fit(X, y)
    net = one.network_
    _, cache = net.forward_propagation(X)
    grad = np.empty(net.n_params)
    net.back_propagation(cache, y, out=grad)
    expected = net.theta - 0.25 * grad
    expected[:net.n_weights] *= 1 - 0.25 * 0.2
    np.testing.assert_allclose(two.network_.theta, expected, rtol=1e-10, atol=1e-12)


# -- label smoothing --------------------------------------------------------------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_label_smoothing_equals_the_trainer_on_smoothed_targets(optimizer):
    X, y = iris()
    s, lr, wd = 0.2, 0.05, 1e-3
    clf = FFNNClassifier(hidden_layer_sizes=(6,), activation="tanh", init="xavier", optimizer=optimizer,
                         learning_rate=lr, batch_size=16, max_iter=4, n_iter_no_change=100, weight_decay=wd,
                         label_smoothing=s, random_state=0).fit(X, y)
    rng = np.random.default_rng(0)
    net = Network([4, 6, 3], activation="tanh", output="softmax", loss="cross_entropy", init="xavier",
                  dtype="float64", seed=rng)
    history = Trainer(net, get_optimizer(optimizer, lr), epochs=4, batch_size=16, weight_decay=wd, seed=rng,
                      label_smoothing=s, verbose=0).fit(X, y)
    np.testing.assert_allclose(clf.network_.theta, net.theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(clf.loss_curve_, history["loss"], rtol=1e-9)
    plain = FFNNClassifier(**{**clf.get_params(), "label_smoothing": 0.0}).fit(X, y)
    assert not np.allclose(plain.network_.theta, clf.network_.theta)


def test_label_smoothing_with_weights_equals_smoothed_soft_targets_by_hand():
    # Packed training targets are (1 - s) e(l) + s / k with the weight column kept.
    X, y = iris()
    clf = FFNNClassifier(label_smoothing=0.3)
    clf._init_targets(y, None, None)
    w = np.linspace(0.5, 2, y.shape[0])
    packed = clf._pack(y, w, np.float64)
    train = clf._pack_train(y, w, np.float64, packed)
    np.testing.assert_allclose(train[:, :-1], 0.7 * np.eye(3)[y] + 0.1)
    np.testing.assert_array_equal(train[:, -1], w)
    np.testing.assert_array_equal(packed[:, :-1], np.eye(3)[y])


def test_weighted_layer_with_soft_targets_is_the_soft_cross_entropy():
    layer = weighted_output_layer(Network([1, 3]).output_layer, soft_targets=True)
    a = np.array([[0.0, 1.0, 2.0], [1.0, -1.0, 0.5]])
    y_hat = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    t = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    w = np.array([1.0, 3.0])
    per_row = -np.sum(t * np.log(y_hat), axis=1)
    assert layer.loss(a, y_hat, pack(t, w)) == pytest.approx(np.dot(w, per_row) / 4)
    np.testing.assert_allclose(layer.grad_a(a, y_hat, pack(t, w)), (y_hat - t) * w[:, None] / 4)


@no_convergence_warning
def test_label_smoothing_validation_uses_the_true_labels():
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(8,), max_iter=20, label_smoothing=0.3, random_state=0)
    clf.fit(X, y, validation_data=(X, y))
    # The validation loss of the last epoch is the cross-entropy of the final model against the true labels.
    assert clf.validation_loss_curve_[-1] == pytest.approx(log_loss(y, clf.predict_proba(X)), rel=1e-9)
    assert clf.validation_scores_[-1] == pytest.approx(clf.score(X, y))
    # The training loss is against the smoothed targets, whose entropy bounds it from below.
    k, s = 3, 0.3
    smoothed = (1 - s) * np.eye(k)[y] + s / k
    entropy = -np.mean(np.sum(smoothed * np.log(smoothed), axis=1))
    assert min(clf.loss_curve_) > entropy


@no_convergence_warning
def test_label_smoothing_with_early_stopping_validates_on_true_labels():
    X, y = iris()
    clf = FFNNClassifier(hidden_layer_sizes=(8,), max_iter=30, early_stopping=True, label_smoothing=0.2,
                         random_state=0).fit(X, y)
    train_rows, val_rows = clf._split(y)
    best = int(np.argmin(clf.validation_loss_curve_))
    assert clf.best_loss_ == clf.validation_loss_curve_[best]
    # The kept weights are those of the best epoch: their loss on the held-out rows, against the true labels.
    assert clf.best_loss_ == pytest.approx(log_loss(y[val_rows], clf.predict_proba(X[val_rows]), labels=[0, 1, 2]),
                                           rel=1e-9)
