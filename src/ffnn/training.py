"""The mini-batch training loop: shuffle, forward, loss, backward, step; history, validation, early stopping.

A :class:`Trainer` holds everything needed to continue a run exactly where it stopped (epochs finished, the
shuffling generator's state, the optimizer's state, the history, the early-stopping record), so a run that is
interrupted and resumed ends with the same weights as one that was not.
"""

import contextlib
import csv
import io
import math
import numbers
import time

import numpy as np
from tqdm.auto import tqdm

from . import cuda, outputs
from .activations import ACTIVATIONS
from .arrays import ScaledBytes, staggered_zeros_like, take_rows
from .errors import ConfigError, DataError, TrainingDiverged, plural, positive_int
from .fsutil import write_text
from .kernels import count_correct
from .optimizers import OPTIMIZERS, Optimizer, _own_kernel, get_optimizer
from .schedules import get_schedule
from .threads import ThreadChoice

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")


class History:
    """One row per finished epoch: epoch, loss, accuracy, val_loss, val_accuracy, learning_rate, seconds.

    ``history["val_loss"]`` gives a column as a list (missing values are None).
    """

    def __init__(self, rows=None):
        self.rows = list(rows or [])

    def append(self, row):
        self.rows.append(dict(row))

    def __getitem__(self, key):
        """``history["loss"]``: a column as a list; ``history[-1]``: an epoch's row as a dict."""
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return dict(self.rows[key])
        if isinstance(key, slice):
            return [dict(row) for row in self.rows[key]]
        if not isinstance(key, str):
            raise TypeError(f"a History takes a column name, an epoch's index or a slice; got {key!r}")
        if key not in COLUMNS and not any(key in row for row in self.rows):
            raise KeyError(f"no column {key!r}; columns: {', '.join(COLUMNS)}")
        return [row.get(key) for row in self.rows]

    def __iter__(self):
        """The rows, one dict per epoch (``pandas.DataFrame(list(history))`` makes a table of them)."""
        return (dict(row) for row in self.rows)

    def __contains__(self, column):
        """Whether ``column`` is a column (``"val_loss" in history``)."""
        return isinstance(column, str) and (column in COLUMNS or any(column in row for row in self.rows))

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return f"History({len(self.rows)} epochs)"

    def to_csv_text(self):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
        return out.getvalue()

    def to_csv(self, path):
        """Write history.csv atomically."""
        write_text(path, self.to_csv_text())

    @classmethod
    def from_csv(cls, path):
        with open(path, newline="", encoding="utf-8") as f:
            rows = [{k: (None if v in ("", None) else (int(v) if k == "epoch" else float(v)))
                     for k, v in row.items()} for row in csv.DictReader(f)]
        return cls(rows)


class Trainer:
    """Runs mini-batch gradient descent on a Network and keeps the state needed to resume.

    Parameters
    ----------
    net : Network
    optimizer : Optimizer
    epochs : int
        Total epochs of the run (a resumed trainer continues up to this number).
    batch_size : int
    weight_decay : float
        L2 penalty (weight_decay / 2) * sum of squared weights added to the loss; its gradient
        weight_decay * W is added to grad_W (biases are not decayed). Reported losses exclude it.
    patience : int, optional
        Stop after this many epochs without improvement of the validation loss (the training loss when there is
        no validation set), then restore the best weights.
    seed : int or numpy.random.Generator, optional
        Randomness of the per-epoch shuffling.
    callbacks : list
        Objects with optional ``on_epoch_begin(trainer)`` and ``on_epoch_end(trainer, row)`` methods, or plain
        functions ``f(trainer, row)`` called at the end of each epoch; setting ``trainer.stop_training = True`` ends
        the run after the current epoch.
    verbose : int
        0 silent; 1 a progress bar (on a terminal) and one line per epoch.
    schedule : Schedule or str, optional
        Learning-rate schedule (see :mod:`ffnn.schedules`); the optimizer's learning rate is its base.
    decoupled_weight_decay : bool
        Apply weight decay as ``W <- W (1 - eta weight_decay)`` after each step (AdamW-style) instead of as an L2
        gradient.
    label_smoothing : float
        Train a softmax output against ``(1 - s) e(l) + s / k`` instead of ``e(l)``.
    """

    def __init__(self, net, optimizer, *, epochs, batch_size, weight_decay=0.0, patience=None, seed=None,
                 callbacks=(), verbose=1, log=print, schedule=None, decoupled_weight_decay=False,
                 label_smoothing=0.0):
        self.net = net
        self.optimizer = optimizer
        self.epochs = positive_int("epochs", epochs)
        self.batch_size = positive_int("batch_size", batch_size)
        if not (isinstance(weight_decay, numbers.Real) and not isinstance(weight_decay, bool)
                and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ConfigError(f"weight_decay must be a number >= 0; got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self.patience = None if patience in (None, 0) else positive_int("patience", patience)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.callbacks = [_callback(cb) for cb in (callbacks or ())]
        self.verbose = verbose
        self.log = log
        self.epoch = 0                 # epochs finished
        self.history = History()
        self.best_loss = math.inf      # best monitored loss so far
        self.best_theta = None         # parameters at that epoch (when patience is set)
        self.wait = 0                  # epochs since the best one
        self.stop_training = False     # set by callbacks (early stop)
        self.stopped_early = False     # the validation loss stopped improving (patience): the run is over
        self.stop_requested = False    # set from outside (a signal handler): stop after the current batch
        self.interrupted = False
        self.schedule = get_schedule(schedule, epochs=self.epochs) if isinstance(schedule, str) else \
            get_schedule(schedule)
        self.base_learning_rate = float(optimizer.learning_rate)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        if not (isinstance(label_smoothing, numbers.Real) and not isinstance(label_smoothing, bool)
                and 0 <= label_smoothing < 1):
            raise ConfigError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}")
        if label_smoothing and net.output_layer.output != "softmax":
            raise ConfigError("label_smoothing needs a softmax output (class labels)")
        self.label_smoothing = float(label_smoothing)
        self._grad = staggered_zeros_like(net.theta)
        self._threads = ThreadChoice(net)  # the BLAS thread count for the batches, by timing (ffnn.threads)
        self._snapshot = None
        self._device_run = None     # the _DeviceBatches of the last fit on a GPU
        self.graph_steps = 0        # steps replayed from a captured CUDA graph (device 'cuda')
        self.capture_error = None   # why a step could not be captured, if it could not
        self._drawn_ahead = None    # the next epoch's row order, drawn while the GPU runs this one

    # -- state for checkpoints --------------------------------------------------------------------------
    def state_dict(self):
        """Everything but the network's parameters needed to continue this run exactly."""
        return {"epoch": self.epoch, "epochs": self.epochs, "rng": self.rng.bit_generator.state,
                "best_loss": self.best_loss, "wait": self.wait, "history": self.history.rows,
                "stopped_early": self.stopped_early,
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "base_learning_rate": self.base_learning_rate,
                "best_theta": None if self.best_theta is None else self.best_theta.copy()}

    def load_state_dict(self, state):
        self.epoch = int(state["epoch"])
        self.rng.bit_generator.state = state["rng"]
        self.best_loss = float(state["best_loss"])
        self.wait = int(state["wait"])
        self.stopped_early = bool(state.get("stopped_early", False))
        self.history = History(state["history"])
        optimizer = dict(state["optimizer"])  # its arrays on the network's device (a checkpoint holds NumPy ones)
        optimizer["arrays"] = {k: self.net.xp.asarray(v) for k, v in optimizer["arrays"].items()}
        self.optimizer.load_state_dict(optimizer)
        self.schedule.load_state_dict(state.get("schedule", {}))
        self.base_learning_rate = float(state.get("base_learning_rate", self.base_learning_rate))
        best = state.get("best_theta")
        self.best_theta = None if best is None else self.net.xp.asarray(best).copy()

    def _take_snapshot(self):
        self._snapshot = (self.net.theta.copy(), self.optimizer.state_dict(), self.rng.bit_generator.state,
                          self.schedule.state_dict())

    def _restore_snapshot(self):
        theta, opt, rng, schedule = self._snapshot
        self.net.theta[...] = theta
        self.optimizer.load_state_dict(opt)
        self.rng.bit_generator.state = rng
        self.schedule.load_state_dict(schedule)

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, X, y, validation_data=None, rows=None, validation_rows=None):
        """Train from epoch ``self.epoch`` up to ``self.epochs``; returns the History.

        ``rows`` (an index array) trains on those rows of X only, and ``validation_rows`` validates on other rows
        of the same X and y, so a validation split needs no copy of the training set. ``validation_data``
        (X_val, y_val) is the alternative for a separate validation set.

        When ``stop_requested`` is set during an epoch, the current batch finishes, the state goes back to the end
        of the last finished epoch (so that a resumed run repeats the interrupted epoch exactly) and ``interrupted``
        is set. A non-finite loss restores the same state and raises TrainingDiverged.
        """
        net, xp = self.net, self.net.xp
        if xp is np:
            X, y = self._checked(X, y)
        n = X.shape[0] if rows is None else len(rows)
        if self.batch_size > n:
            raise ConfigError(f"batch_size {self.batch_size} is larger than the {n} training examples; "
                              f"use at most {n}")
        softmax = net.output_layer.output == "softmax"
        y_labels = y
        if self.label_smoothing and y.ndim == 1:
            k = net.sizes[-1]
            smoothed = xp.full((y.shape[0], k), self.label_smoothing / k, net.dtype)
            smoothed[xp.arange(y.shape[0]), y] += 1 - self.label_smoothing
            y = smoothed
        on_device = xp is not np
        if not on_device:
            s = _Batches(self, X, y, n)
            self._threads.start_run()
        else:  # kept, with its captured step, for the next fit on the same device arrays (not on copies of host
            # arrays, which could have changed since)
            run = self._device_run
            if run is None or not (run.X is X and run.y is y and run.rows is rows and run.n == n):
                self._device_run = None  # its buffers go before the new ones are made
                self._device_run = _DeviceBatches(self, X, y, n, rows)
            s = self._device_run
            xp.cuda.Device().synchronize()  # what other streams wrote (the weights, say) is in place first
        run_epoch = self._device_epoch if on_device else self._host_epoch
        self.stop_training = self.stopped_early = False

        # A diverging loss is caught and reported below; NumPy's overflow warnings would only add noise.
        with np.errstate(over="ignore", invalid="ignore"), s.stream, _synchronized(s.stream if on_device else None):
            while self.epoch < self.epochs and not self.stop_training:
                epoch = self.epoch + 1
                self.optimizer.learning_rate = self.base_learning_rate * self.schedule.rate(self.epoch)
                self._take_snapshot()
                for cb in self.callbacks:
                    getattr(cb, "on_epoch_begin", lambda t: None)(self)
                started = time.perf_counter()
                perm = self._permutation(n)
                if rows is not None:
                    perm = rows[perm]
                bar = tqdm(total=s.n_batches, desc=f"epoch {epoch}/{self.epochs}", leave=False, unit="batch",
                           disable=None) if self.verbose >= 1 else None
                try:
                    loss_sum, correct = run_epoch(s, perm, epoch, bar)
                finally:
                    if bar is not None:
                        bar.close()
                if self.stop_requested:
                    self._restore_snapshot()
                    self.interrupted = True
                    break
                row = {"epoch": epoch, "loss": loss_sum / n, "accuracy": correct / n if softmax else None,
                       "val_loss": None, "val_accuracy": None,
                       "learning_rate": float(self.optimizer.learning_rate)}
                if validation_rows is not None:
                    val = net.evaluate(s.X, y_labels, rows=validation_rows)
                    row["val_loss"], row["val_accuracy"] = val["loss"], val.get("accuracy")
                elif validation_data is not None:
                    val = net.evaluate(*validation_data)
                    row["val_loss"], row["val_accuracy"] = val["loss"], val.get("accuracy")
                row["seconds"] = time.perf_counter() - started
                self.epoch = epoch
                self.history.append(row)
                self.schedule.observe(row["val_loss"] if row["val_loss"] is not None else row["loss"])
                self._early_stopping(row)
                for cb in self.callbacks:
                    getattr(cb, "on_epoch_end", lambda t, r: None)(self, row)
                if self.verbose >= 1:
                    self.log(format_row(row, self.epochs))
                    if self.stopped_early:
                        self.log(f"early stopping: no improvement for {plural(self.patience, 'epoch')}; "
                                 f"restoring the weights of epoch {epoch - self.wait}")
            if self.patience is not None and self.best_theta is not None and not self.interrupted:
                net.theta[...] = self.best_theta
        return self.history

    def _permutation(self, n):
        """This epoch's row order: ``self.rng.permutation(n)``, or the same draw made ahead (see _draw_ahead)."""
        ahead, self._drawn_ahead = self._drawn_ahead, None
        if ahead is not None:
            size, before, perm, after = ahead
            if size == n and _same_state(before, self.rng.bit_generator.state):
                self.rng.bit_generator.state = after
                return perm
        return self.rng.permutation(n)

    def _draw_ahead(self, n):
        """Draw the next epoch's row order now, while the GPU works through this epoch, and rewind the generator:
        the next epoch takes it only if the generator is then where it was here, so the draws stay the same."""
        before = self.rng.bit_generator.state
        try:
            perm = self.rng.permutation(n)
            self._drawn_ahead = (n, before, perm, self.rng.bit_generator.state)
        finally:  # rewound even when a second Ctrl-C lands here
            self.rng.bit_generator.state = before

    def _checked(self, X, y):
        """X and y as fit() passes them, for a Trainer used on its own: the network's dtype, its number of features,
        labels or targets that fit it (each a clear error otherwise). X is checked for NaN and infinities here only
        where it has to be converted (fit() has checked it, and this runs at every call), and otherwise when a loss
        turns non-finite."""
        net = self.net
        if not isinstance(X, ScaledBytes):
            X = np.asarray(X)
            if X.ndim != 2 or X.dtype != net.dtype or X.shape[1] != net.sizes[0] or X.shape[0] == 0:
                X = net._check_X(X)
        return X, net._batch_targets(y, X.shape[0])

    def _host_epoch(self, s, perm, epoch, bar):
        """One pass over the rows ``perm`` in mini-batches; returns (summed loss, correct predictions)."""
        net, B = self.net, s.B
        loss_sum, correct = 0.0, 0
        with self._threads.over(s.caches.values()) as threads:
            for i, start in enumerate(range(0, s.n, B)):
                idx = perm[start:start + B]
                m = idx.shape[0]
                cache, xb, yb = s.caches[m], s.X_buf[:m], s.y_buf[:m]
                take_rows(s.X, idx, out=xb)
                s.y.take(idx, axis=0, out=yb)
                y_hat, _ = net.forward_propagation(xb, cache, rng=self.rng)
                loss = net.loss(cache, yb, check=False)
                if not math.isfinite(loss):
                    self._check_finite_inputs(s)
                    self._diverged(loss, f"at epoch {epoch}, batch {i + 1} of {s.n_batches}")
                net.back_propagation(cache, yb, out=self._grad, check=False)
                self._update(s)
                loss_sum += loss * m
                if s.softmax:
                    labels = yb if yb.ndim == 1 else yb.argmax(axis=1)
                    correct += count_correct(y_hat, labels)
                if bar is not None:
                    bar.update(1)
                if self.stop_requested:
                    break
                threads.batch_done(m)
        return loss_sum, correct

    def _check_finite_inputs(self, s):
        # A loss that turned non-finite may come from inputs fit() refuses, given to a Trainer used on its own (X is
        # looked at only now, so that a run pays nothing for it); they are named rather than taken for divergence.
        if isinstance(s.X, ScaledBytes):  # finite by construction
            return
        try:
            self.net._check_finite_rows(s.X)
        except DataError:
            self._restore_snapshot()
            raise

    def _update(self, s):
        """The optimizer's step, with weight decay as an L2 gradient or decoupled."""
        if self.weight_decay and not self.decoupled_weight_decay:
            s.grad_weights += np.multiply(s.weights, self.weight_decay, out=s.decay_buf)
        self.optimizer.step(s.params, s.grads)
        if self.weight_decay and self.decoupled_weight_decay:
            s.weights *= 1 - self.optimizer.learning_rate * self.weight_decay

    def _diverged(self, loss, where):
        self._restore_snapshot()
        raise TrainingDiverged(f"the training loss became {loss} {where}; try a smaller learning rate (the weights "
                               f"of the last finished epoch, {self.epoch}, are kept)")

    # -- on a GPU ------------------------------------------------------------------------------------------------
    def _device_epoch(self, s, perm, epoch, bar):
        """The same pass on a GPU: each full batch replays one captured step (see :mod:`ffnn.cuda`); the first
        batch, the last partial one and steps that cannot be captured run eagerly. The loss and the correct count
        add up on the device and are read once, at the end."""
        opt, B = self.optimizer, s.B
        if getattr(opt, "device_t", None) is not None:  # a restored snapshot or a loaded state moved the host's t
            opt.device_t.sync(opt.t)
        s.perm.set(np.asarray(perm, np.int64))
        s.offset.fill(0)
        s.loss_total.fill(0)
        s.correct_total.fill(0)
        key = (float(opt.learning_rate), *(float(getattr(opt, h)) for h in opt.hyperparameters))
        if key != s.graph_key:  # the scalars a captured step holds changed (a schedule): capture it again
            s.graph = s.graphs = s.last_graph = None
            s.graph_key = key
        full, i = s.n // B, 0
        while i < s.n_batches:
            m = B if i < full else s.n - full * B
            graph = s.graph if m == B else s.last_graph
            if graph is not None:
                steps = cuda.STEPS_PER_GRAPH if m == B and s.graphs and full - i >= cuda.STEPS_PER_GRAPH else 1
                (s.graphs if steps > 1 else graph).launch(s.stream)
                self.graph_steps += steps
                opt.t += steps
                if getattr(opt, "device_t", None) is not None:
                    opt.device_t.host += steps
            else:
                steps = 1
                self._device_step(s, m)
                if s.capturable and m == B:
                    s.graph = self._capture(s, 1, B)
                    s.graphs = self._capture(s, cuda.STEPS_PER_GRAPH, B) if s.graph is not None else None
                elif s.capturable:  # the last, partial batch: a graph of its own, replayed from the next epoch on
                    s.last_graph = self._capture(s, 1, m)
            i += steps
            if bar is not None:
                bar.update(steps)
            if self.stop_requested:
                break
        if not self.stop_requested:  # also after a fit's last epoch: the next fit may go on (epoch by epoch)
            self._draw_ahead(s.n)
        loss_sum, correct = float(s.loss_total[0]), int(s.correct_total[0])  # waits for the epoch's steps
        if not math.isfinite(loss_sum):
            self._diverged(loss_sum, f"in epoch {epoch}")
        return loss_sum, correct

    def _device_step(self, s, m):
        """One step on a batch of ``m`` rows taken at the device's offset into the device's row order."""
        net, cache = self.net, s.caches[m]
        xb, yb = cuda.batch_rows(s.X, s.y, s.perm, s.offset, s.X_buf[:m], s.y_buf[:m])
        y_hat, _ = net.forward_propagation(xb, cache, rng=self.rng)
        if not s.builtin_loss:  # a loss of the user's: computed on the host, which waits for the GPU
            s.loss_total += net.loss(cache, yb, check=False) * m
        # the loss, the correct count and the next batch's offset, in one launch
        cuda.add_totals(net.output_layer.loss_name if s.builtin_loss else None, cache.a[net.L], y_hat, yb,
                        s.loss_total, s.correct_total if s.softmax else None, s.offset, m)
        net.back_propagation(cache, yb, out=self._grad, check=False)
        self._update(s)

    def _capture(self, s, steps, m):
        """``steps`` steps of batches of ``m`` rows as one CUDA graph, or None (and eager steps from then on) where
        capture fails."""
        opt, t = self.optimizer, self.optimizer.t
        counter = getattr(opt, "device_t", None)
        if counter is not None:
            counter.sync(t)
        graph = None
        try:
            s.stream.begin_capture()
            try:
                for _ in range(steps):
                    self._device_step(s, m)
            finally:
                graph = s.stream.end_capture()
        except Exception as exc:  # a step that does something a graph cannot hold
            s.capturable, self.capture_error, graph = False, f"{type(exc).__name__}: {exc}", None
        opt.t = t  # capturing ran nothing: the step is taken when the graph is launched
        if counter is not None:
            counter.host = t
        return graph

    def _early_stopping(self, row):
        monitored = row["val_loss"] if row["val_loss"] is not None else row["loss"]
        if monitored < self.best_loss:
            self.best_loss, self.wait = monitored, 0
            if self.patience is not None:
                self.best_theta = self.net.theta.copy()
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                self.stop_training = self.stopped_early = True


def _same_state(a, b):
    """Whether two bit generator states are equal (some hold arrays: MT19937's key)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    return np.array_equal(a, b) if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) else a == b


@contextlib.contextmanager
def _synchronized(stream):
    """Wait for ``stream``'s work on the way out (the caller reads the weights on another stream)."""
    try:
        yield
    finally:
        if stream is not None:
            stream.synchronize()


class _Batches:
    """The arrays one run of the CPU training loop reuses for every batch."""

    stream = contextlib.nullcontext()

    def __init__(self, trainer, X, y, n):
        net, xp, B = trainer.net, trainer.net.xp, trainer.batch_size
        self.X, self.y, self.n, self.B = X, y, n, B
        self.n_batches = -(-n // B)
        self.softmax = net.output_layer.output == "softmax"
        self.X_buf = xp.empty((B, X.shape[1]), net.dtype)
        self.y_buf = xp.empty((B,) + y.shape[1:], y.dtype)
        self.caches = {B: net.new_cache(B)}
        if n % B:
            self.caches[n % B] = net.new_cache(n % B)
        self.params, self.grads = {"theta": net.theta}, {"theta": trainer._grad}
        self.weights, self.grad_weights = net.theta[:net.n_weights], trainer._grad[:net.n_weights]
        self.decay_buf = xp.empty_like(self.weights) if trainer.weight_decay else None


class _DeviceBatches(_Batches):
    """The same on a GPU, plus the training set, its row order and the running totals on the device, and the
    captured step."""

    def __init__(self, trainer, X, y, n, rows):
        net, xp = trainer.net, trainer.net.xp
        self.rows = rows
        if not cuda.is_array(X):  # a ScaledBytes, say: its floats
            X = np.asarray(X, net.dtype)
        # C-contiguous, as the batch gather reads them (device arrays that are stay as they are)
        X = xp.ascontiguousarray(xp.asarray(X, dtype=net.dtype))
        y = xp.ascontiguousarray(xp.asarray(y, dtype=np.int64 if y.ndim == 1 else net.dtype))
        self.stream = xp.cuda.Stream(non_blocking=True)
        with self.stream:
            super().__init__(trainer, X, y, n)
            self.perm = xp.empty(n, np.int64)
            self.offset = xp.zeros(1, np.int64)
            self.loss_total = xp.zeros(1, np.float64)
            self.correct_total = xp.zeros(1, np.uint64)
        layer, opt = net.output_layer, trainer.optimizer
        self.builtin_loss = layer.loss in (outputs.cross_entropy, outputs.squared_error)
        # one step, STEPS_PER_GRAPH steps, and the last partial batch's step, captured for these hyperparameters
        self.graph, self.graphs, self.last_graph, self.graph_key = None, None, None, None
        self.capturable = bool(
            cuda.GRAPHS and self.builtin_loss
            and layer.grad_a in (outputs.grad_softmax_cross_entropy, outputs.grad_linear_squared_error)
            and layer.O in (outputs.softmax, outputs.linear) and not net.dropout
            and ACTIVATIONS.get(net.activation.name) is net.activation
            and opt.name in cuda.OPTIMIZER_KERNELS and _own_kernel(type(opt)))


class _EpochEnd:
    """A plain function given as a callback: called at the end of each epoch as ``function(trainer, row)``."""

    def __init__(self, function):
        self.on_epoch_end = function


def _callback(cb):
    if hasattr(cb, "on_epoch_begin") or hasattr(cb, "on_epoch_end"):
        return cb
    if callable(cb):
        return _EpochEnd(cb)
    raise ConfigError(f"a callback is an object with on_epoch_begin(trainer) and/or on_epoch_end(trainer, row) "
                      f"methods, or a function f(trainer, row); got {cb!r}")


def format_row(row, epochs):
    """One line per epoch, e.g. ``epoch  3/10  loss 0.4123  acc 0.8512  val_loss 0.43  val_acc 0.84  1.2s``."""
    parts = [f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}", f"loss {row['loss']:.4f}"]
    if row.get("accuracy") is not None:
        parts.append(f"acc {row['accuracy']:.4f}")
    if row.get("val_loss") is not None:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if row.get("val_accuracy") is not None:
        parts.append(f"val_acc {row['val_accuracy']:.4f}")
    parts.append(f"lr {row['learning_rate']:.3g}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def split_rows(n, fraction, rng):
    """Hold out ``fraction`` of n examples (at random) for validation: (train_rows, validation_rows)."""
    if not (isinstance(fraction, numbers.Real) and not isinstance(fraction, bool) and 0 <= fraction < 1):
        raise ConfigError(f"validation fraction must be in [0, 1); got {fraction!r}")
    n_val = int(round(n * fraction))
    if fraction > 0 and (n_val < 1 or n_val >= n):
        raise DataError(f"cannot hold out {fraction} of {n} examples for validation; use more data or a "
                        "different fraction")
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def split_validation(X, y, fraction, rng):
    """Hold out ``fraction`` of the examples (at random) for validation: (X_train, y_train, X_val, y_val)."""
    train, val = split_rows(X.shape[0], fraction, rng)
    return X[train], y[train], X[val], y[val]


def fit(net, X, y, *, epochs=10, batch_size=64, optimizer="adam", learning_rate=1e-3, weight_decay=0.0,
        validation_data=None, validation_fraction=0.0, patience=None, seed=None, callbacks=(), verbose=1,
        log=print, schedule=None, decoupled_weight_decay=False, label_smoothing=0.0, **optimizer_kwargs):
    """Train ``net`` on (X, y) with mini-batch gradient descent.

    Parameters
    ----------
    X : array, shape (N, n)
    y : array, shape (N,) of integer labels or (N, k) of targets
    epochs, batch_size : int
        Passes over the training data; examples per gradient step (batch_size = N is the lecture's full-batch
        gradient descent). Data is reshuffled every epoch.
    optimizer : str or Optimizer
        'sgd', 'momentum', 'nag', 'rmsprop', 'adam' or 'nadam' (or an instance).
    learning_rate : float
    weight_decay : float
        L2 penalty on the weights (see :class:`Trainer`).
    validation_data : (X_val, y_val), optional
    validation_fraction : float
        When no validation_data is given, hold out this fraction of (X, y) for validation.
    patience : int, optional
        Early stopping (restores the best weights).
    seed : int, optional
        Randomness of the validation split and the shuffling.
    callbacks : list
    verbose : int
    schedule : str or Schedule, optional
        'constant', 'step', 'exponential', 'cosine' or 'plateau' (see :mod:`ffnn.schedules`).
    decoupled_weight_decay : bool
        AdamW-style weight decay instead of an L2 gradient.
    label_smoothing : float
    **optimizer_kwargs
        momentum, beta, beta1, beta2, epsilon, as the optimizer takes them.

    Returns
    -------
    History
    """
    X = net._check_X(X)
    y = net._check_y(y, X.shape[0])
    rng = np.random.default_rng(seed)
    rows = validation_rows = None
    if validation_data is None and validation_fraction:
        rows, validation_rows = split_rows(X.shape[0], validation_fraction, rng)
    elif validation_data is not None:
        if len(validation_data) != 2:
            raise ConfigError("validation_data must be (X_val, y_val); Network.fit takes no sample weights (the "
                              "estimators FFNNClassifier and FFNNRegressor do)")
        X_val = net._check_X(validation_data[0])
        validation_data = (X_val, net._check_y(validation_data[1], X_val.shape[0]))
    if isinstance(optimizer, Optimizer) and optimizer_kwargs:
        raise ConfigError(f"fit() got an unexpected argument {sorted(optimizer_kwargs)[0]!r}; with an optimizer "
                          f"instance, its hyperparameters go to its constructor")
    if not isinstance(optimizer, Optimizer):
        rule = OPTIMIZERS.get(str(optimizer).lower())
        unknown = sorted(set(optimizer_kwargs) - set(rule.hyperparameters)) if rule is not None else []
        if unknown:
            raise ConfigError(f"fit() got an unexpected argument {unknown[0]!r}; it is neither an argument of fit nor "
                              f"a hyperparameter of {rule.name} ({', '.join(rule.hyperparameters) or 'none'})")
        optimizer = get_optimizer(optimizer, learning_rate, **optimizer_kwargs)
    trainer = Trainer(net, optimizer, epochs=epochs, batch_size=batch_size, weight_decay=weight_decay,
                      patience=patience, seed=rng, callbacks=callbacks, verbose=verbose, log=log,
                      schedule=schedule, decoupled_weight_decay=decoupled_weight_decay,
                      label_smoothing=label_smoothing)
    return trainer.fit(X, net.xp.asarray(y), validation_data, rows, validation_rows)  # X: as _check_X gives it


