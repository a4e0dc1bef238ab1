"""A training run on disk: config -> data -> Network + optimizer -> Trainer -> files in a run folder.

A run folder holds
  config.json              the TrainConfig of the run
  history.csv              one row per finished epoch (rewritten atomically after each epoch)
  checkpoint.safetensors   parameters, optimizer state, shuffling state, history: resumes the run exactly
  model.safetensors        the trained network with class names and feature scaling
  summary.json             test_loss, test_accuracy, epochs_completed, seconds, status
Every file is written atomically, so an interrupted or crashed run leaves the last good version of each.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import cuda, data, kernels
from .config import TrainConfig
from .data import Scaling
from .data.datasets import USER_SUFFIXES
from .activations import get_activation
from .errors import ConfigError, ModelFileError, TrainingDiverged, plural
from .fsutil import read_json, write_text
from .io import load_checkpoint, save_checkpoint
from .network import Network
from .optimizers import get_optimizer
from .outputs import canonical_output
from .training import Trainer, split_rows

CONFIG, HISTORY, CHECKPOINT, MODEL, SUMMARY = ("config.json", "history.csv", "checkpoint.safetensors",
                                                "model.safetensors", "summary.json")


@dataclass
class RunResult:
    """What a run produced: its folder, network, history, summary and final status."""

    run_dir: str
    net: Network
    trainer: Trainer
    summary: dict
    status: str          # "completed", "interrupted" or "diverged"
    message: str = ""


def new_run_dir(config):
    """A fresh folder ``output_dir/<run name>`` (with -2, -3, ... appended rather than reuse an old one)."""
    base = os.path.join(config.output_dir, config.run_name())
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = f"{base}-{i}"
    os.makedirs(path)
    return path


def build_network(config, dataset):
    """The Network a config describes for a dataset: sizes from the data, output and loss from the task."""
    classification = dataset.task == "classification"
    if classification and dataset.n_outputs < 2:
        from .errors import DataError
        raise DataError(f"dataset {dataset.name!r} has a single class ({dataset.class_names[0]!r}); a classifier "
                        "needs at least two classes")
    output = config.output or ("softmax" if classification else "linear")
    loss = config.loss or ("cross_entropy" if classification else "squared_error")
    if not classification and output == "softmax":
        raise ConfigError(f"dataset {dataset.name!r} is a regression task; use output 'linear' with loss "
                          "'squared_error'")
    if classification and canonical_output(output) == "linear":
        raise ConfigError(f"dataset {dataset.name!r} holds class labels; use output 'softmax' (with loss "
                          "'cross_entropy' or 'mean_squared_error')")
    sizes = [dataset.n_features] + config.hidden + [dataset.n_outputs]
    net = Network(sizes, activation=config.activation, output=output, loss=loss, init=config.weight_init,
                  dtype=config.dtype, seed=config.seed, device=config.device, dropout=config.dropout)
    # what evaluate and predict need to see new data as this network saw its own: where the data is (a user's
    # file by its absolute path), what the outputs mean, and how the features were scaled (and named, in a CSV);
    # regression targets are standardised too, so that one learning rate suits targets of any size
    net.metadata = {"dataset": dataset.source or dataset.name, "task": dataset.task,
                    "class_names": dataset.class_names,
                    "scaling": dataset.scaling.to_dict() if dataset.scaling is not None else None,
                    "target": config.target, "feature_names": dataset.feature_names,
                    "data_dir": os.path.abspath(config.data_dir) if config.data_dir else None,
                    "target_scaling": None if classification else target_scaling(dataset.y_train).to_dict()}
    return net


def target_scaling(y):
    """The Scaling that standardises regression targets y, shape (n,) or (n, k): per output, mean and std."""
    return Scaling.standardising(np.asarray(y, np.float64).reshape(len(y), -1))


def load_dataset(config):
    # an explicit output says what a user's file holds: a linear one real targets, a softmax one classes
    task = {"linear": "regression", "softmax": "classification"}.get(config.output and canonical_output(config.output))
    return data.load(config.dataset, data_dir=config.data_dir, target=config.target, dtype=config.dtype, task=task)


class _EpochFiles:
    """After every epoch: history.csv and checkpoint.safetensors, atomically."""

    def __init__(self, run_dir):
        self.run_dir = run_dir

    def on_epoch_end(self, trainer, row):
        save_checkpoint(os.path.join(self.run_dir, CHECKPOINT), trainer.net, trainer)
        trainer.history.to_csv(os.path.join(self.run_dir, HISTORY))


STOPPING = "ffnn: stopping after the current batch (press Ctrl-C again to abort at once)"


@contextlib.contextmanager
def on_sigint(first, again):
    """In the block, a first Ctrl-C calls ``first`` and says so on stderr, and each later one calls ``again``. Where
    no handler can be put back (not the main thread, a handler set outside Python), or Ctrl-C is ignored (a process
    started in the background), nothing changes."""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous in (None, signal.SIG_IGN):
        yield
        return
    pressed = []

    def handler(signum, frame):
        if pressed:
            again()
            return
        pressed.append(True)
        first()
        print(f"\n{STOPPING}", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_on_sigint(trainer):
    """First Ctrl-C: finish the current batch and stop; a second one interrupts at once."""
    if os.name != "posix":
        return contextlib.nullcontext()
    return on_sigint(lambda: setattr(trainer, "stop_requested", True), _interrupt)


def _interrupt():
    raise KeyboardInterrupt


def train(config, *, run_dir=None, resume=False, callbacks=(), verbose=1, log=print, handle_sigint=True,
          dataset=None):
    """Run (or resume) the training a TrainConfig describes, writing everything into a run folder.

    Parameters
    ----------
    config : TrainConfig
    run_dir : str, optional
        Folder to write into (a new one under ``config.output_dir`` when omitted).
    resume : bool
        Continue the run in ``run_dir`` from its checkpoint, up to ``config.epochs`` epochs in total.
    callbacks : list
        Extra Trainer callbacks (pruning, logging, ...).
    dataset : Dataset, optional
        Already loaded data (sweeps reuse it across trials).

    Returns
    -------
    RunResult
    """
    config.validate()
    # so that the run can be evaluated and resumed from any folder
    config = dataclasses.replace(config, dataset=_absolute_if_file(config.dataset),
                                 data_dir=config.data_dir and os.path.abspath(config.data_dir))
    started = time.perf_counter()
    own_data = dataset is None
    dataset = dataset if dataset is not None else load_dataset(config)
    rng = np.random.default_rng(config.seed + 1)  # validation split, then shuffling
    X, y = dataset.inputs("train"), dataset.y_train  # image sets: bytes, converted batch by batch
    rows = validation_rows = None  # the split is kept as row indices: the training set is never copied
    if config.val_fraction:
        rows, validation_rows = split_rows(X.shape[0], config.val_fraction, rng)
    n_train = X.shape[0] if rows is None else len(rows)
    previous_seconds = 0.0
    if resume:
        net, state, _ = load_checkpoint(os.path.join(run_dir, CHECKPOINT), device=config.device)
        _check_resumable(run_dir, config, dataset, net, state)
        done = int(state["epoch"])
        if state.get("stopped_early"):
            raise ConfigError(f"{run_dir} stopped early after epoch {done} (its validation loss stopped improving); "
                              "there is nothing to resume")
        if config.epochs < done:
            raise ConfigError(f"{run_dir} has already finished {plural(done, 'epoch')}; --epochs must be at least "
                              f"{done} (got {config.epochs})")
        previous_seconds = float((_read_summary(run_dir) or {}).get("seconds") or 0.0)
    else:
        net = build_network(config, dataset)
    if config.batch_size > n_train:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {n_train} training examples; "
                          f"use at most {n_train}")
    target_scaling = Scaling.saved(net.metadata, "target_scaling")
    X, y = net._check_X(X), net._check_y(standard_targets(y, target_scaling), X.shape[0])
    optimizer = get_optimizer(config.optimizer, config.learning_rate, **config.optimizer_kwargs())
    files = _EpochFiles(run_dir)
    trainer = Trainer(net, optimizer, epochs=config.epochs, batch_size=config.batch_size,
                      weight_decay=config.weight_decay, patience=config.patience, seed=rng,
                      callbacks=[files, *callbacks], verbose=verbose, log=log,
                      schedule=config.schedule(), decoupled_weight_decay=config.decoupled_weight_decay,
                      label_smoothing=config.label_smoothing)
    created = None  # the folder this call made, removed again if it fails before anything is saved in it
    if resume:
        try:
            trainer.load_state_dict(state)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"{os.path.join(run_dir, CHECKPOINT)}: damaged checkpoint (its trainer state: "
                                 f"{exc})") from None
        trainer.epochs = config.epochs
        if trainer.epoch >= trainer.epochs:
            log(f"{run_dir} already finished {plural(trainer.epoch, 'epoch')}; pass a larger --epochs to train "
                "further")
            return _finished_run(run_dir, net, trainer)
        write_text(os.path.join(run_dir, CONFIG), json.dumps(config.to_dict(), indent=2) + "\n")  # its new epochs
        net.metadata["data_dir"] = config.data_dir  # where its data is now
    else:
        if run_dir is None:
            run_dir = created = new_run_dir(config)
        elif not os.path.isdir(run_dir):
            os.makedirs(run_dir)
            created = run_dir
        files.run_dir = run_dir
        write_text(os.path.join(run_dir, CONFIG), json.dumps(config.to_dict(), indent=2) + "\n")
    try:
        if verbose >= 1:
            _log_settings(log, config, dataset, net, n_train, validation_rows, trainer, target_scaling, resume)
        status, message = "completed", ""
        guard = stop_on_sigint(trainer) if handle_sigint else contextlib.nullcontext()
        with guard:
            try:
                trainer.fit(X, net.xp.asarray(y), rows=rows, validation_rows=validation_rows)
            except TrainingDiverged as exc:
                status, message = "diverged", str(exc)
    except BaseException:
        if created is not None and not os.path.exists(os.path.join(created, CHECKPOINT)):
            _remove_run_dir(created)  # it holds config.json alone: a run that never finished an epoch
        raise
    if trainer.interrupted:
        status = "interrupted"
        message = (f"interrupted: {trainer.epoch} of {trainer.epochs} epochs finished and saved; resume with: "
                   f"ffnn train --resume {run_dir}")
    if status != "completed":
        save_checkpoint(os.path.join(run_dir, CHECKPOINT), net, trainer)
        trainer.history.to_csv(os.path.join(run_dir, HISTORY))
    net.save(os.path.join(run_dir, MODEL))
    if own_data:
        # Nothing needs the training split any more. Letting it go before the test split is used keeps this step
        # far below the memory used in training.
        X = y = dataset.X_train = None
    test = net.evaluate(dataset.inputs("test"), standard_targets(dataset.y_test, target_scaling))
    summary = {"test_loss": test["loss"], "test_accuracy": test.get("accuracy"),
               "epochs_completed": trainer.epoch,
               "seconds": round(previous_seconds + time.perf_counter() - started, 3),
               "status": status, "run_dir": run_dir}
    if target_scaling is not None:  # the loss is of standardised targets; this is in the targets' own units
        summary["test_rmse"] = rmse(net, dataset.inputs("test"), dataset.y_test, target_scaling)
    if validation_rows is not None and len(trainer.history):
        summary["best_val_accuracy"] = max((a for a in trainer.history["val_accuracy"] if a is not None),
                                           default=None)
        summary["best_val_loss"] = min(trainer.history["val_loss"])
    write_text(os.path.join(run_dir, SUMMARY), json.dumps(summary, indent=2) + "\n")
    return RunResult(run_dir, net, trainer, summary, status, message)


def _log_settings(log, config, dataset, net, n_train, validation_rows, trainer, target_scaling, resume):
    n_val = 0 if validation_rows is None else len(validation_rows)
    log(f"data: {dataset.name}, {n_train} training, {n_val} validation and {len(dataset.y_test)} test examples"
        + ("; targets standardised, so losses are in units of their standard deviation"
           if target_scaling is not None else ""))
    log(f"network: {'-'.join(map(str, net.sizes))} {net.activation.name}, {net.output_layer.output} + "
        f"{net.output_layer.loss_name}, {net.n_params:,} parameters"
        + (f", dropout {net.dropout:g}" if net.dropout else ""))
    optimizer = trainer.optimizer
    settings = ", ".join([f"lr {config.learning_rate:g}"] + [f"{k} {getattr(optimizer, k):g}"
                                                             for k in optimizer.hyperparameters])
    log(f"training: {optimizer.name} ({settings}), {config.lr_schedule} schedule, batch {config.batch_size}, "
        f"{plural(config.epochs, 'epoch')}, {net.dtype.name}, "
        + (cuda.describe() if cuda.is_array(net.theta) else "compiled kernels" if kernels.ENABLED
           else "NumPy only (ffnn's C extension is not in use)")
        + (f"; resuming after epoch {trainer.epoch}" if resume else ""))
    unused = unused_schedule_settings(config)
    if unused:
        log(f"note: {' and '.join('--' + k.replace('_', '-') for k in unused)} "
            f"{'has' if len(unused) == 1 else 'have'} no effect with the {config.lr_schedule} schedule")


def unused_schedule_settings(config):
    """The schedule settings given that the chosen schedule does not take (lr_gamma for a cosine one, say)."""
    import inspect

    from .schedules import SCHEDULES

    takes = inspect.signature(SCHEDULES[config.lr_schedule.lower()].__init__).parameters
    return [field for field, name in (("lr_gamma", "gamma"), ("lr_step_size", "step_size"),
                                      ("lr_min_factor", "min_factor"))
            if getattr(config, field) is not None and name not in takes]


def _finished_run(run_dir, net, trainer):
    """The result of a resumed run that has nothing left to train: what its folder already holds. A run stopped
    (interrupted, or diverged in the epoch after) once it had the epochs now asked for is complete."""
    summary = _read_summary(run_dir)
    if not summary:
        raise ConfigError(f"{run_dir} has no readable {SUMMARY}; resume it with a larger --epochs")
    if summary.get("status", "completed") != "completed":
        summary["status"] = "completed"
        write_text(os.path.join(run_dir, SUMMARY), json.dumps(summary, indent=2) + "\n")
    return RunResult(run_dir, net, trainer, summary, "completed")


def _check_resumable(run_dir, config, dataset, net, state):
    """The checkpoint must be the run config.json describes (an edited config.json, or a checkpoint copied from
    another run, would otherwise continue with other math than it says)."""
    sizes = [dataset.n_features] + config.hidden + [dataset.n_outputs]
    saved = state.get("optimizer", {}).get("name") if isinstance(state.get("optimizer"), dict) else None
    differences = [what for what, same in (
        (f"sizes {'-'.join(map(str, sizes))} against {'-'.join(map(str, net.sizes))}", list(net.sizes) == sizes),
        (f"dtype {config.dtype} against {net.dtype.name}", net.dtype.name == config.dtype),
        (f"activation {config.activation} against {net.activation.name}",
         get_activation(config.activation).name == net.activation.name),
        (f"optimizer {config.optimizer} against {saved}", saved in (None, config.optimizer.lower())))
        if not same]
    if differences:
        raise ConfigError(f"{run_dir}: its {CONFIG} and {CHECKPOINT} disagree ({'; '.join(differences)}); it "
                          "cannot be resumed")
    if not (isinstance(state.get("epoch"), int) and state["epoch"] >= 0):
        raise ModelFileError(f"{os.path.join(run_dir, CHECKPOINT)}: damaged checkpoint (bad epoch count)")


def _absolute_if_file(dataset):
    return os.path.abspath(dataset) if dataset.lower().endswith(USER_SUFFIXES) else dataset


def _read_summary(run_dir):
    summary = read_json(os.path.join(run_dir, SUMMARY))
    return summary if isinstance(summary, dict) else None


def _remove_run_dir(path):
    for name in os.listdir(path):
        if name != CONFIG and not name.startswith("."):
            return  # something besides the run's own config: leave it all
    shutil.rmtree(path, ignore_errors=True)


def standard_targets(y, target_scaling):
    """Regression targets in the units the network is trained in (unchanged without a target scaling)."""
    if target_scaling is None:
        return y
    return ((np.asarray(y, np.float64) - target_scaling.offset) / target_scaling.scale).astype(y.dtype)


def rmse(net, X, y, target_scaling):
    """Root mean squared error of a regression network's outputs in the targets' own units, over every example and
    output (several outputs of different units are best compared one by one)."""
    y_hat = target_scaling.inverse_transform(net.predict(X))
    y = np.asarray(y, np.float64).reshape(y_hat.shape)
    return float(np.sqrt(np.mean((y_hat - y) ** 2)))


def load_run_config(run_dir):
    """The TrainConfig saved in a run folder."""
    path = os.path.join(run_dir, CONFIG)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"{run_dir} is not a run folder (a file); pass the folder a training run created")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{run_dir} is not a run folder (no {CONFIG}); pass the folder a training run "
                          "created") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the run's configuration ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: cannot read the run's configuration (not a mapping of settings)")
    if not os.path.exists(os.path.join(run_dir, CHECKPOINT)):
        raise ConfigError(f"{run_dir} has no {CHECKPOINT} to resume from (it finished no epoch)")
    return TrainConfig.from_dict(values, source=path)
