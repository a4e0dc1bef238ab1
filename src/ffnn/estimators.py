"""scikit-learn estimators over ffnn's Network and Trainer: FFNNClassifier and FFNNRegressor.

They follow scikit-learn's conventions (``__init__`` only stores its arguments, fitted attributes end in ``_``,
inputs are validated with scikit-learn's own helpers) and pass its estimator checks, so they work in
``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` and pickle with joblib. Features are used as given: put a
``StandardScaler`` in front, as with any gradient-trained model.

What they add over ``MLPClassifier``/``MLPRegressor``:

- ``validation_loss_curve_`` and ``validation_scores_`` whenever there is a validation set;
- ``fit(X, y, validation_data=(X_val, y_val[, sample_weight_val]))``: early stopping on a set you choose;
- ``fit(..., callbacks=[...])`` with ffnn's Trainer callbacks, and a tqdm progress bar when ``verbose``;
- dropout, and a choice of initialisation and of optimizer (sgd, momentum, nag, rmsprop, adam, nadam);
- learning-rate schedules (step, exponential, cosine, plateau), decoupled (AdamW-style) weight decay and, for
  classes, label smoothing.

Sample weights give the weighted batch mean of the loss, ``sum_i w_i l_i / sum_i w_i`` (scikit-learn's MLP uses
the same normalisation), so weights of all ones change nothing and only their ratios matter.
"""

import inspect
import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d
from tqdm.auto import tqdm

from .activations import get_activation
from .backend import DEVICES, to_numpy
from .errors import ConfigError, DataError
from .initializers import get_initializer
from .io import network_from
from .network import DTYPES, Network
from .optimizers import get_optimizer
from .outputs import OutputLayer
from .schedules import SCHEDULES, Cosine, Schedule, get_schedule
from .training import Trainer

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6
    def validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


# -- per-example weights on top of a core OutputLayer ---------------------------------------------------------
# The Trainer shuffles X and y together and hands each batch's y to the output layer, so the weights travel as
# the last column of the targets: y_packed = [targets | w], with one-hot targets for classes.

def _per_example_loss(name, a, y_hat, t, soft_targets=False):
    """l_i for every row: cross-entropy -sum_j t_ij log y_hat_ij (-log y_hat_i[l_i] for one-hot t), or squared
    error sum_j (y_hat_ij - t_ij)^2."""
    if name == "cross_entropy":
        if not soft_targets:
            p = np.einsum("ij,ij->i", t, y_hat)
            if p.min() > 1e-30:
                return -np.log(p)
        # -sum_j t_j log y_hat_j = log sum_j exp(a_j) - sum_j t_j a_j for targets summing to one; finite even
        # where some probability underflowed.
        m = a.max(axis=1, keepdims=True)
        return np.log(np.exp(a - m).sum(axis=1)) + m[:, 0] - np.sum(t * a, axis=1)
    diff = y_hat - t
    return np.sum(diff * diff, axis=1)


def weighted_output_layer(base, soft_targets=False):
    """``base`` with the loss ``sum_i w_i l_i / sum_i w_i`` for targets packed as ``[targets | w]``.

    Each row of grad_aL depends on its own example only, so the weighted gradient is the core one with row i
    scaled by ``N w_i / sum w`` (the core gradient already carries the 1/N of the batch mean).
    ``soft_targets``: the class targets may be any distributions (label smoothing), not only one-hot rows.
    """

    def loss(a, y_hat, y):
        t, w = y[:, :-1], y[:, -1]
        total = w.sum()
        if not total > 0:
            return 0.0
        # (w * l).sum() rather than np.dot: a BLAS dot splits long batches differently on different thread counts
        return float((w * _per_example_loss(base.loss_name, a, y_hat, t, soft_targets)).sum() / total)

    def grad_a(a, y_hat, y, out=None):
        t, w = y[:, :-1], y[:, -1]
        out = base.grad_a(a, y_hat, t, out=out)
        total = w.sum()
        out *= (w * (w.shape[0] / total))[:, None] if total > 0 else 0
        return out

    return OutputLayer(base.output, base.loss_name, base.O, loss, grad_a)


class _EstimatorSchedule(Schedule):
    """A core schedule seen from one Trainer: the Trainer's epoch e is epoch ``offset + e`` of the schedule
    (``offset`` is ``n_iter_`` for ``partial_fit``, 0 for ``fit``), and cosine stays at its minimum after its
    last epoch. The Trainer's own ``observe`` (training loss) is ignored: the estimator's monitor feeds the
    schedule the loss it monitors."""

    name = "estimator"

    def __init__(self, inner, offset=0):
        self.inner, self.offset = inner, int(offset)

    def rate(self, epoch):
        t = self.offset + epoch
        if isinstance(self.inner, Cosine):
            t = min(t, self.inner.epochs)
        return self.inner.rate(t)

    def observe(self, loss):
        pass

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


class _Monitor:
    """Trainer callback: loss curves, validation scores, the convergence / early-stopping rule, the progress bar."""

    def __init__(self, estimator, net, loss, validation, early_stopping, check_convergence, bar, schedule):
        self.est, self.net, self.loss = estimator, net, loss
        self.schedule = schedule                # observes the validation loss when there is one, else training
        self.validation = validation            # (X_val, y_packed_val) or None
        self.early_stopping = early_stopping
        self.check_convergence = check_convergence
        self.bar = bar
        self.converged = False
        if validation is not None:
            self.cache = net.new_cache(validation[0].shape[0])
            self.on_device = (net.xp.asarray(validation[0]), net.xp.asarray(validation[1]))

    def on_epoch_end(self, trainer, row):
        est = self.est
        est.loss_curve_.append(row["loss"])
        postfix = {"loss": f"{row['loss']:.4g}"}
        monitored = row["loss"]
        observed = row["loss"]
        if self.validation is not None:
            X_val, y_val = self.on_device  # the validation set as arrays of the network's device
            y_hat, cache = self.net.forward_propagation(X_val, self.cache)
            val_loss = self.loss(cache.a[self.net.L], y_hat, y_val)
            est.validation_loss_curve_.append(val_loss)
            est.validation_scores_.append(est._validation_score(to_numpy(y_hat), self.validation[1]))
            postfix["val_loss"] = f"{val_loss:.4g}"
            observed = val_loss
            if self.early_stopping:
                monitored = val_loss
        elif est.validation_loss_curve_ is not None:
            # an earlier fit had a validation set: NaN keeps the curves aligned with loss_curve_
            est.validation_loss_curve_.append(math.nan)
            est.validation_scores_.append(math.nan)
        self.schedule.observe(observed)
        # scikit-learn's rule: an epoch counts as an improvement when it beats the best by more than tol.
        if monitored < est.best_loss_ - est.tol:
            est._no_improvement_count = 0
        else:
            est._no_improvement_count += 1
        if monitored < est.best_loss_:
            est.best_loss_ = monitored
            if self.early_stopping:
                est._best_theta = self.net.theta.copy()
                est.best_validation_score_ = est.validation_scores_[-1]
        if (self.early_stopping or self.check_convergence) and est._no_improvement_count >= est.n_iter_no_change:
            self.converged = True
            trainer.stop_training = True
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)


class _BaseFFNN(BaseEstimator):
    """Shared fitting code; see FFNNClassifier and FFNNRegressor for the parameters."""

    _output = _loss = None

    def __init__(self, hidden_layer_sizes, activation, *, optimizer, learning_rate, optimizer_params, batch_size,
                 max_iter, weight_decay, dropout, init, early_stopping, validation_fraction, n_iter_no_change, tol,
                 warm_start, dtype, random_state, verbose, lr_schedule, lr_schedule_params, decoupled_weight_decay,
                 device):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.optimizer_params = optimizer_params
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.init = init
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.lr_schedule = lr_schedule
        self.lr_schedule_params = lr_schedule_params
        self.decoupled_weight_decay = decoupled_weight_decay
        self.device = device

    # -- parameters ------------------------------------------------------------------------------------------
    def _check_params(self):
        """Every constructor argument, checked in one place; a ConfigError (a ValueError) names what is allowed."""
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, (int, np.integer)) else hidden
        if not (isinstance(hidden, (list, tuple, np.ndarray)) and all(
                isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden)):
            raise ConfigError(f"hidden_layer_sizes must be a tuple of positive integers such as (100,) or "
                              f"(64, 32); got {self.hidden_layer_sizes!r}")
        hidden = [int(h) for h in hidden]
        _check_int("batch_size", self.batch_size, 1)
        _check_int("max_iter", self.max_iter, 1)
        _check_int("n_iter_no_change", self.n_iter_no_change, 1)
        _check_number("weight_decay", self.weight_decay, 0.0)
        if not (_is_number(self.dropout) and 0 <= self.dropout < 1):
            raise ConfigError(f"dropout must be a probability in [0, 1); got {self.dropout!r}")
        if self.dropout and not hidden:
            raise ConfigError(f"dropout={self.dropout!r} drops hidden units, and hidden_layer_sizes=() gives none; "
                              "use dropout=0.0 or add a hidden layer")
        _check_number("tol", self.tol, 0.0)
        if not (_is_number(self.validation_fraction) and 0 < self.validation_fraction < 1):
            raise ConfigError(f"validation_fraction must be a number in (0, 1); got {self.validation_fraction!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}; got {self.device!r}")
        if _dtype_name(self.dtype) not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.optimizer_params is not None and not isinstance(self.optimizer_params, dict):
            raise ConfigError(f"optimizer_params must be a dict such as {{'beta1': 0.9}} or None; "
                              f"got {self.optimizer_params!r}")
        get_activation(self.activation)
        if self.init != "auto":
            get_initializer(self.init)
        if not isinstance(self.decoupled_weight_decay, (bool, np.bool_)):
            raise ConfigError(f"decoupled_weight_decay must be True or False; got {self.decoupled_weight_decay!r}")
        self._check_schedule()
        # Builds (and so checks) the optimizer: name, learning_rate and hyperparameters.
        optimizer = get_optimizer(self.optimizer, self.learning_rate, **(self.optimizer_params or {}))
        return hidden, optimizer

    def _check_schedule(self):
        """lr_schedule names a schedule; lr_schedule_params holds only that schedule's arguments, in range."""
        if not isinstance(self.lr_schedule, str) or self.lr_schedule.lower() not in SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(SCHEDULES)}; got {self.lr_schedule!r}")
        params = self.lr_schedule_params
        if params is not None and not isinstance(params, dict):
            raise ConfigError(f"lr_schedule_params must be a dict such as {{'gamma': 0.5, 'step_size': 10}} or None; "
                              f"got {params!r}")
        name = self.lr_schedule.lower()
        allowed = [p for p in inspect.signature(SCHEDULES[name].__init__).parameters
                   if p not in ("self", "_")]
        for key, value in (params or {}).items():
            if key not in allowed:
                raise ConfigError(f"lr_schedule_params: the {name} schedule does not take {key!r}; it takes "
                                  f"{', '.join(allowed) or 'nothing'}")
            if key in ("step_size", "patience", "epochs"):
                _check_int(f"lr_schedule_params['{key}']", value, 1)
            elif key == "gamma" and not (_is_number(value) and 0 < value <= 1):
                raise ConfigError(f"lr_schedule_params['gamma'] must be a number in (0, 1]; got {value!r}")
            elif key == "min_factor" and not (_is_number(value) and 0 <= value <= 1):
                raise ConfigError(f"lr_schedule_params['min_factor'] must be a number in [0, 1]; got {value!r}")

    def _new_schedule(self):
        """The schedule of one ``fit``: cosine runs over ``max_iter`` epochs unless lr_schedule_params says else."""
        params = dict(self.lr_schedule_params or {})
        if self.lr_schedule.lower() == "cosine":
            params.setdefault("epochs", int(self.max_iter))
        return get_schedule(self.lr_schedule, **params)

    def _check_continuation(self, hidden):
        """A warm-started ``fit`` or a ``partial_fit`` trains the fitted network's weights, so the parameters that
        shape those weights must still describe them."""
        net = self.network_
        fitted = {"hidden_layer_sizes": (tuple(net.sizes[1:-1]), tuple(hidden)),
                  "dtype": (net.dtype.name, np.dtype(self.dtype).name), "device": (net.device, self.device)}
        for name, (has, asked) in fitted.items():
            if has != asked:
                raise ConfigError(f"{name}={getattr(self, name)!r}, but the fitted network_ has {name} {has!r} "
                                  f"and warm_start and partial_fit continue training its weights; fit with "
                                  f"warm_start=False (or fit a clone) to train a new network")

    def _init_name(self):
        if self.init != "auto":
            return self.init
        return "he" if str(self.activation).lower() == "relu" else "xavier"

    # -- fitting ---------------------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, validation_data=None, callbacks=(), incremental=False, classes=None):
        hidden, optimizer = self._check_params()
        callbacks = [] if callbacks is None else list(callbacks)
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        if not first_pass:
            self._check_continuation(hidden)
        dtype = np.dtype(self.dtype)
        early_stopping = bool(self.early_stopping) and not incremental
        # A refused fit leaves a fitted estimator exactly as it was. validate_data(reset=True) and the targets'
        # set-up assign n_features_in_, feature_names_in_, classes_ or the target scaling while they check, so
        # every check runs before anything is trained and a failing one puts all the attributes back.
        before = dict(self.__dict__)
        try:
            X, y = validate_data(self, X, y, reset=first_pass, dtype=dtype, order="C",
                                 multi_output=self._multi_output_y, y_numeric=self._output == "linear")
            w = self._check_weights(sample_weight, X)
            if first_pass:
                self._init_targets(y, w, classes)
            y_packed = self._pack(y, w, dtype)              # true targets: validation
            y_train = self._pack_train(y, w, dtype, y_packed)  # what the loss is trained against
            validation, train_rows = None, None
            if validation_data is not None:
                validation = self._validation_set(validation_data, dtype)
            elif early_stopping:
                train_rows, val_rows = self._split(y)
                validation = (X[val_rows], y_packed[val_rows])
            if first_pass:
                seed = np.random.default_rng(_seed_from(self.random_state))
                net = Network([X.shape[1], *hidden, len(self._output_names())], activation=self.activation,
                              output=self._output, loss=self._loss, init=self._init_name(), dtype=self.dtype,
                              seed=seed, device=self.device)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        n_train = X.shape[0] if train_rows is None else len(train_rows)
        # What follows changes the estimator (and, warm, its network) before training starts: a refusal there (a
        # bad callback, say) must leave it as it was too.
        kept = None if first_pass else (self.network_, self.network_.activation, dict(self.network_.metadata),
                                        self.network_.dropout)
        bar = None
        try:
            trainer, monitor, net, core_layer, weighted, epochs = self._prepare(
                first_pass, net if first_pass else None, seed if first_pass else None, optimizer, incremental,
                validation, y_train, y_packed, early_stopping, n_train, callbacks)
            bar = monitor.bar
        except BaseException:
            if kept is not None:
                kept[0].activation, kept[0].metadata, kept[0].dropout = kept[1:]
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        net.output_layer = weighted
        try:
            trainer.fit(X, y_train, rows=train_rows)
        finally:
            net.output_layer = core_layer
            if bar is not None:
                bar.close()
            self.n_iter_ += trainer.epoch  # the finished epochs, also when training stopped on an error
            self.t_ += trainer.epoch * n_train
        if early_stopping and self._best_theta is not None:
            net.theta[...] = self._best_theta
        self._best_theta = None
        if not incremental and not early_stopping and not monitor.converged and trainer.epoch == epochs:
            warnings.warn(f"{type(self).__name__} reached max_iter={self.max_iter} epochs before the training "
                          f"loss stopped improving by more than tol={self.tol}; raise max_iter or the "
                          "learning_rate", ConvergenceWarning)
        return self

    def _prepare(self, first_pass, net, seed, optimizer, incremental, validation, y_train, y_packed,
                 early_stopping, n_train, callbacks):
        """Set the estimator up for this fit and build its Trainer: (trainer, monitor, net, core output layer,
        weighted output layer, epochs)."""
        if first_pass:
            self.network_ = net
            self._rng = seed
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self.validation_loss_curve_ = None
            self.validation_scores_ = None
        else:
            # scikit-learn's MLP continues with the activation it is given now, on the same weights.
            self.network_.activation = get_activation(self.activation)
        # What `ffnn predict` / `ffnn evaluate` need to use the saved network_ on its own.
        self.network_.metadata = {**self.network_.metadata, **self._metadata()}
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = optimizer
        if not incremental or not hasattr(self, "_schedule"):
            self._schedule = self._new_schedule()
        # The Trainer takes the optimizer's rate as the base of the schedule; the last epoch left a scheduled one.
        self._optimizer.learning_rate = optimizer.learning_rate
        if not incremental or first_pass:
            self.best_loss_ = math.inf
            self._no_improvement_count = 0
            self._best_theta = None
            self.best_validation_score_ = None
        if validation is not None and self.validation_loss_curve_ is None:
            # the epochs before this one had no validation set: NaN keeps the curves aligned with loss_curve_
            self.validation_loss_curve_ = [math.nan] * len(self.loss_curve_)
            self.validation_scores_ = [math.nan] * len(self.loss_curve_)

        net = self.network_
        net.dropout = float(self.dropout)
        epochs = 1 if incremental else int(self.max_iter)
        core_layer = net.output_layer
        weighted = weighted_output_layer(core_layer, soft_targets=y_train is not y_packed)
        schedule = _EstimatorSchedule(self._schedule, offset=self.n_iter_ if incremental else 0)
        monitor = _Monitor(self, net, weighted.loss, validation, early_stopping,
                           check_convergence=not incremental, bar=None, schedule=self._schedule)
        trainer = Trainer(net, self._optimizer, epochs=epochs, batch_size=min(int(self.batch_size), n_train),
                          weight_decay=float(self.weight_decay), seed=self._rng,
                          callbacks=[monitor, *callbacks], verbose=0, schedule=schedule,
                          decoupled_weight_decay=bool(self.decoupled_weight_decay))
        if self.verbose:  # last, so that nothing after it can fail and leave the bar open; verbose asks for it
            monitor.bar = tqdm(total=epochs, desc=type(self).__name__, unit="epoch", leave=True)
        return trainer, monitor, net, core_layer, weighted, epochs

    def _pack_train(self, y, w, dtype, y_packed):
        """The packed training targets; the true ones unless a subclass smooths them."""
        return y_packed

    def _metadata(self):
        """``network_.metadata`` with the keys ``ffnn predict`` and ``ffnn evaluate`` read (as in
        ``ffnn.runs.build_network``), so that a saved ``network_`` is usable on its own."""
        names = getattr(self, "feature_names_in_", None)
        return {"task": "classification" if self._output == "softmax" else "regression",
                "feature_names": None if names is None else [str(n) for n in names],
                "scaling": None}  # features are used as given

    def _check_weights(self, sample_weight, X):
        w = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError("sample_weight must be finite and non-negative")
        if not w.sum() > 0:
            raise DataError("sample_weight sums to zero; at least one example needs a positive weight")
        return w

    def _validation_set(self, validation_data, dtype):
        """(X_val, packed y_val) from ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise DataError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        X_val, y_val = validation_data[0], validation_data[1]
        X_val = validate_data(self, X_val, reset=False, dtype=dtype, order="C")
        y_val = self._check_y_val(y_val, X_val.shape[0])
        w_val = self._check_weights(validation_data[2] if len(validation_data) == 3 else None, X_val)
        return X_val, self._pack(y_val, w_val, dtype)

    def _split(self, y):
        """(training rows, validation rows): a random, for classes stratified, ``validation_fraction``."""
        stratify = y if self._output == "softmax" else None
        try:
            train, val = train_test_split(np.arange(y.shape[0]), test_size=self.validation_fraction,
                                          random_state=_seed_from(self.random_state), stratify=stratify)
        except ValueError as exc:
            raise DataError(f"cannot hold out validation_fraction={self.validation_fraction} of "
                            f"{y.shape[0]} examples for early stopping ({exc})") from None
        return np.sort(train), np.sort(val)

    def _predict_outputs(self, X):
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype, order="C")
        return self.network_.predict_proba(X)

    # -- pickling: the Network is rebuilt from its config and parameters --------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        net = state.pop("network_", None)
        if net is not None:
            state["_network_state"] = ({k: to_numpy(v).copy() for k, v in net.params.items()},
                                       {"config": net.config, "metadata": net.metadata})
        return state

    def __setstate__(self, state):
        saved = state.pop("_network_state", None)
        if saved is not None:
            state["network_"] = network_from(saved[0], saved[1], type(self).__name__, state.get("device", "cpu"))
        super().__setstate__(state)

class FFNNClassifier(ClassifierMixin, _BaseFFNN):
    """A feedforward network classifier (softmax output, cross-entropy loss) trained with ffnn's hand-written
    backpropagation.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Width of each hidden layer.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Hidden activation g ('sigmoid' and 'linear' are accepted spellings).
    optimizer : {'adam', 'nadam', 'rmsprop', 'sgd', 'momentum', 'nag'}, default='adam'
    learning_rate : float, default=3e-3
    optimizer_params : dict, optional
        The optimizer's hyperparameters (beta1, beta2, epsilon, momentum, beta).
    batch_size : int, default=100
        Examples per gradient step (capped at the number of examples).
    max_iter : int, default=200
        Epochs (passes over the training data) at most.
    weight_decay : float, default=7e-3
        L2 penalty (weight_decay / 2) ||W||^2 added to the batch-mean loss; biases are not decayed.
    decoupled_weight_decay : bool, default=False
        Apply weight_decay AdamW-style instead: ``W <- W (1 - eta weight_decay)`` after each optimizer step, with
        eta the (scheduled) learning rate of that step, and no L2 term in the gradient.
    lr_schedule : {'constant', 'step', 'exponential', 'cosine', 'plateau'}, default='constant'
        Learning rate of each epoch t (0-based): eta_t = learning_rate * rate(t), from :mod:`ffnn.schedules`:
        step ``gamma^floor(t / step_size)``, exponential ``gamma^t``, cosine
        ``min_factor + (1 - min_factor) (1 + cos(pi t / epochs)) / 2``, plateau multiplies the rate by gamma
        after ``patience`` epochs without a lower loss (the validation loss when there is a validation set, the
        training loss otherwise). Each ``fit`` runs the schedule from t = 0 over its own epochs (cosine over
        ``max_iter`` epochs, then staying at its minimum); ``partial_fit`` uses t = ``n_iter_``, the epochs run so
        far, with one schedule (and plateau record) kept across calls.
    lr_schedule_params : dict, optional
        The schedule's arguments, e.g. ``{'step_size': 10, 'gamma': 0.5}``: step (step_size, gamma), exponential
        (gamma), cosine (epochs, min_factor), plateau (gamma, patience, min_factor); unset ones take the
        defaults of :mod:`ffnn.schedules`.
    dropout : float, default=0.0
        Probability of dropping each hidden unit at each training step (inverted dropout; predictions use every
        unit).
    init : {'auto', 'he', 'xavier', 'random'}, default='auto'
        Initial weights: 'he' for relu, 'xavier' otherwise when 'auto'.
    early_stopping : bool, default=False
        Stop when the validation loss has not improved by more than ``tol`` for ``n_iter_no_change`` epochs and
        keep the weights of the best epoch. The validation set is ``fit``'s ``validation_data`` when given,
        otherwise a stratified ``validation_fraction`` of the training data.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
        Without early stopping, training stops once the training loss has not improved by more than ``tol`` for
        this many consecutive epochs (scikit-learn's convergence rule); a ConvergenceWarning says when
        ``max_iter`` came first.
    tol : float, default=1e-4
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a fresh optimizer) instead of starting over. As in
        scikit-learn's MLP, a changed ``activation`` applies to those weights and ``init`` only shapes new ones;
        a changed ``hidden_layer_sizes``, ``dtype`` or ``device`` does not fit the current weights, so ``fit``
        (and ``partial_fit``) refuses it with a ValueError instead of ignoring it.
    dtype : {'float64', 'float32'}, default='float64'
    device : {'cpu', 'cuda'}, default='cpu'
        Where the network trains: 'cuda' needs CuPy and an NVIDIA GPU (``pip install 'ffnn[gpu]'``). Predictions
        come back as NumPy arrays either way.
    random_state : int, RandomState or None
        Initial weights, shuffling and validation split.
    verbose : int, default=0
        1 shows a tqdm progress bar over epochs with the training and validation loss.
    label_smoothing : float, default=0.0
        s in [0, 1): train against the smoothed targets ``(1 - s) e(l) + s / k`` (k classes) instead of e(l).
        ``loss_curve_`` is then the cross-entropy against the smoothed targets; ``validation_loss_curve_``,
        ``validation_scores_`` and early stopping use the true labels.

    The defaults of learning_rate, batch_size and weight_decay were chosen by 5-fold cross-validation on
    scikit-learn's digits, breast_cancer and wine sets (see ``benchmarks/sklearn_compare.py``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    network_ : ffnn.Network
        The trained network (``network_.save(path)`` writes an ffnn model file). Its ``metadata`` hold what
        ``ffnn predict`` needs: ``task``, ``class_names`` (the classes as strings), ``feature_names``
        (``feature_names_in_`` or None), ``scaling`` (None: features are used as given) and ``target_scaling``
        (None here; the regressor's ``{'offset': [...], 'scale': [...]}``, ``y = y_hat * scale + offset``).
    loss_curve_ : list of float
        Training loss (mean cross-entropy against the training targets, smoothed when label_smoothing > 0;
        penalty excluded) of every epoch.
    validation_loss_curve_, validation_scores_ : list of float or None
        Validation loss and accuracy of every epoch, when there is a validation set; as long as
        ``loss_curve_``, with NaN for epochs without one (before a warm-started ``fit`` with a validation set,
        or a ``partial_fit`` after one).
    best_loss_ : float
        Lowest monitored loss: the validation loss with early stopping, the training loss otherwise.
    best_validation_score_ : float or None
        Validation accuracy of the epoch whose weights were kept (early stopping only).
    n_iter_ : int
        Epochs run; ``t_``: training examples seen.
    n_features_in_, feature_names_in_
        As in every scikit-learn estimator.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ffnn.estimators import FFNNClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), FFNNClassifier(random_state=0)).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _output, _loss = "softmax", "cross_entropy"
    _multi_output_y = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam", learning_rate=3e-3,
                 optimizer_params=None, batch_size=100, max_iter=200, weight_decay=7e-3, dropout=0.0,
                 init="auto", early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 warm_start=False, dtype="float64", random_state=None, verbose=0, lr_schedule="constant",
                 lr_schedule_params=None, decoupled_weight_decay=False, label_smoothing=0.0, device="cpu"):
        super().__init__(hidden_layer_sizes, activation, optimizer=optimizer, learning_rate=learning_rate,
                         optimizer_params=optimizer_params, batch_size=batch_size, max_iter=max_iter,
                         weight_decay=weight_decay, dropout=dropout, init=init, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, tol=tol,
                         warm_start=warm_start, dtype=dtype, random_state=random_state, verbose=verbose,
                         lr_schedule=lr_schedule, lr_schedule_params=lr_schedule_params,
                         decoupled_weight_decay=decoupled_weight_decay, device=device)
        self.label_smoothing = label_smoothing

    def fit(self, X, y, sample_weight=None, validation_data=None, callbacks=()):
        """Train on (X, y).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
            Class labels (numbers or strings).
        sample_weight : array-like, shape (n_samples,), optional
        validation_data : tuple, optional
            ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``: recorded every epoch in
            ``validation_loss_curve_`` and ``validation_scores_``, and used by early stopping.
        callbacks : list or None, optional
            ffnn Trainer callbacks: objects with ``on_epoch_end(trainer, row)``; setting
            ``trainer.stop_training = True`` ends training after the epoch.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, validation_data, callbacks)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current state; ``classes`` is required on the first call.

        The optimizer's state carries over between calls; early stopping and the convergence rule do not apply.
        The learning rate is that of epoch ``n_iter_`` of ``lr_schedule``.
        """
        if not hasattr(self, "network_") and classes is None:
            raise DataError("the first call to partial_fit needs classes=, the list of every class label")
        if hasattr(self, "network_") and classes is not None and not np.array_equal(np.unique(classes),
                                                                                    self.classes_):
            raise DataError(f"classes={list(classes)!r} differs from the classes of the first call, "
                            f"{list(self.classes_)!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities y_hat, shape (n_samples, n_classes), columns in the order of ``classes_``."""
        return self._predict_outputs(X).astype(np.float64, copy=False)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of every row of X."""
        y_hat = self._predict_outputs(X)
        return self.classes_[np.argmax(y_hat, axis=1)]

    # -- targets ---------------------------------------------------------------------------------------------
    def _init_targets(self, y, w, classes):
        check_classification_targets(y)  # y is 1-D here: validate_data turned a column into a vector
        self.classes_ = np.unique(y if classes is None else np.asarray(classes))
        if len(self.classes_) < 2:
            raise DataError(f"FFNNClassifier needs at least two classes to train; y has only one class, "
                            f"{self.classes_[0]}")

    def _output_names(self):
        return self.classes_

    def _metadata(self):
        return {**super()._metadata(), "class_names": [str(c) for c in self.classes_], "target_scaling": None}

    def _encode(self, y):
        y = column_or_1d(y, warn=True)
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise DataError(f"y contains labels not seen in the first fit: {np.unique(y[unknown])[:5].tolist()}; "
                            f"known classes: {self.classes_.tolist()}")
        return idx

    def _check_params(self):
        checked = super()._check_params()
        if not (_is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            raise ConfigError(f"label_smoothing must be a number in [0, 1); got {self.label_smoothing!r}")
        return checked

    def _pack(self, y, w, dtype):
        idx = self._encode(y)
        packed = np.zeros((idx.shape[0], len(self.classes_) + 1), dtype)
        packed[np.arange(idx.shape[0]), idx] = 1
        packed[:, -1] = w
        return packed

    def _pack_train(self, y, w, dtype, y_packed):
        # Label smoothing: train against (1 - s) e(l) + s / k; the weight column stays as it is.
        s = float(self.label_smoothing)
        if s == 0:
            return y_packed
        smoothed = y_packed.copy()
        k = len(self.classes_)
        smoothed[:, :-1] *= 1 - s
        smoothed[:, :-1] += s / k
        return smoothed

    def _check_y_val(self, y_val, n):
        y_val = column_or_1d(y_val, warn=True)
        if y_val.shape[0] != n:
            raise DataError(f"y_val has {y_val.shape[0]} rows but X_val has {n}; they must match")
        return y_val

    def _validation_score(self, y_hat, y_packed):
        t, w = y_packed[:, :-1], y_packed[:, -1]
        return float(accuracy_score(t.argmax(axis=1), to_numpy(y_hat).argmax(axis=1), sample_weight=w))


class FFNNRegressor(RegressorMixin, _BaseFFNN):
    """A feedforward network regressor (linear output, squared error) trained with ffnn's hand-written
    backpropagation.

    The targets are standardised internally (weighted mean and standard deviation of the first ``fit``) and
    predictions are mapped back, so the learning rate does not depend on the scale of y; ``loss_curve_`` and
    ``validation_loss_curve_`` are mean squared errors in those standardised units. One or several outputs.
    ``network_`` outputs standardised targets too: its metadata ``target_scaling``, ``{'offset': y_mean,
    'scale': y_scale}`` (lists, one value per output), maps them back, ``y = y_hat * scale + offset``.

    Parameters and attributes are those of :class:`FFNNClassifier` (without ``classes_`` and
    ``label_smoothing``; the validation score is R^2), except for the defaults learning_rate=1e-2,
    batch_size=64 and weight_decay=1e-2, chosen by 5-fold cross-validation on scikit-learn's diabetes set and
    Friedman's synthetic problems.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ffnn.estimators import FFNNRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = make_pipeline(StandardScaler(), FFNNRegressor(random_state=0)).fit(X, y)
    >>> reg.score(X, y) > 0.5
    True
    """

    _output, _loss = "linear", "squared_error"
    _multi_output_y = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam", learning_rate=1e-2,
                 optimizer_params=None, batch_size=64, max_iter=200, weight_decay=1e-2, dropout=0.0,
                 init="auto", early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 warm_start=False, dtype="float64", random_state=None, verbose=0, lr_schedule="constant",
                 lr_schedule_params=None, decoupled_weight_decay=False, device="cpu"):
        super().__init__(hidden_layer_sizes, activation, optimizer=optimizer, learning_rate=learning_rate,
                         optimizer_params=optimizer_params, batch_size=batch_size, max_iter=max_iter,
                         weight_decay=weight_decay, dropout=dropout, init=init, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, tol=tol,
                         warm_start=warm_start, dtype=dtype, random_state=random_state, verbose=verbose,
                         lr_schedule=lr_schedule, lr_schedule_params=lr_schedule_params,
                         decoupled_weight_decay=decoupled_weight_decay, device=device)

    def fit(self, X, y, sample_weight=None, validation_data=None, callbacks=()):
        """Train on (X, y); y of shape (n_samples,) or (n_samples, n_outputs). See :meth:`FFNNClassifier.fit`."""
        return self._fit(X, y, sample_weight, validation_data, callbacks)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current state (see :meth:`FFNNClassifier.partial_fit`)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs) like the y given to fit."""
        y = self._predict_outputs(X).astype(np.float64) * self._y_scale + self._y_mean
        return y[:, 0] if self._y_1d else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    # -- targets ---------------------------------------------------------------------------------------------
    def _init_targets(self, y, w, classes):
        self._y_1d = y.ndim == 1
        y2 = y.reshape(y.shape[0], -1).astype(np.float64)
        self._y_mean = np.average(y2, axis=0, weights=w)
        std = np.sqrt(np.average((y2 - self._y_mean) ** 2, axis=0, weights=w))
        self._y_scale = np.where(std > 0, std, 1.0)

    def _output_names(self):
        return self._y_mean

    def _metadata(self):
        # The network outputs standardised targets: y = y_hat * scale + offset, one value per output.
        return {**super()._metadata(), "class_names": None,
                "target_scaling": {"offset": self._y_mean.tolist(), "scale": self._y_scale.tolist()}}

    def _targets(self, y):
        y2 = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        if y2.shape[1] != self._y_mean.shape[0]:
            raise DataError(f"y has {y2.shape[1]} outputs; this regressor was fitted with {self._y_mean.shape[0]}")
        return (y2 - self._y_mean) / self._y_scale

    def _pack(self, y, w, dtype):
        return np.column_stack([self._targets(y), w]).astype(dtype, copy=False)

    def _check_y_val(self, y_val, n):
        y_val = np.asarray(y_val, dtype=np.float64)
        if y_val.ndim not in (1, 2) or y_val.shape[0] != n or not np.all(np.isfinite(y_val)):
            raise DataError(f"y_val must be finite, of shape ({n},) or ({n}, n_outputs); got {y_val.shape}")
        return y_val

    def _validation_score(self, y_hat, y_packed):
        return float(r2_score(y_packed[:, :-1], to_numpy(y_hat), sample_weight=y_packed[:, -1]))


# -- helpers -----------------------------------------------------------------------------------------------------
def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")


def _check_number(name, value, low):
    if not (_is_number(value) and value >= low):
        raise ConfigError(f"{name} must be a number >= {low}; got {value!r}")


def _dtype_name(dtype):
    try:  # "float32", np.float32 or np.dtype("float32")
        return str(dtype) if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def _seed_from(random_state):
    """An int seed from scikit-learn's random_state (None, an int or a RandomState)."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise ConfigError(f"random_state must be None, an int or a numpy RandomState; got {random_state!r}")
