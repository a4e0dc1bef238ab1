"""Weights & Biases logging of a run: its config, per-epoch metrics, confusion matrix and one sample image per class.

Optional: without the ``wandb`` package (``pip install 'ffnn[wandb]'``) a one-line notice is printed and the run goes
on with its local files. ``WANDB_MODE=offline`` keeps everything on disk (``wandb sync`` uploads it later).
"""

import sys

from .errors import ConfigError, FFNNError

NOT_INSTALLED = "ffnn: wandb is not installed (pip install 'ffnn[wandb]'); logging locally only"
NOT_LOGGED_IN = "Weights & Biases is not logged in: run `wandb login`, or set WANDB_MODE=offline"


def wandb_available(stream=None):
    """True when wandb can be imported; otherwise print the one-line notice and return False."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        print(NOT_INSTALLED, file=stream or sys.stderr)
        return False
    return True


def make_logger(project, entity, config, *, name=None, group=None, extra_config=None, stream=None):
    """A :class:`WandbLogger` for a run, or None (after the one-line notice) when wandb is not installed."""
    try:
        import wandb
    except ImportError:
        print(NOT_INSTALLED, file=stream or sys.stderr)
        return None
    return WandbLogger(wandb, project, entity, config, name=name, group=group, extra_config=extra_config)


def _init_error(wandb, exc):
    """One ConfigError line for wandb's own errors at ``wandb.init`` (no login, no network), or None (a bug)."""
    errors = getattr(wandb, "errors", None)
    if not isinstance(exc, getattr(errors, "Error", ())):
        return None
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else type(exc).__name__
    if isinstance(exc, getattr(errors, "AuthenticationError", ())) or "api key" in message.lower():
        return ConfigError(NOT_LOGGED_IN)
    if isinstance(exc, getattr(errors, "CommError", ())):
        return ConfigError(f"Weights & Biases cannot be reached ({message}); check the network, or set "
                           "WANDB_MODE=offline")
    return ConfigError(f"Weights & Biases refused the run ({message})")


class WandbLogger:
    """Trainer callback that logs to one wandb run; call :meth:`finish` with the run's result at the end.

    Parameters
    ----------
    wandb : module
    project, entity : str
    config : TrainConfig
    name : str, optional
        Run name (default ``config.run_name()``, e.g. ``hl_2_sz_128_bs_64_ac_tanh_o_adam``).
    group : str, optional
        wandb group (a sweep's study name).
    extra_config : dict, optional
        More keys for the run's config (a sweep's trial number).
    """

    def __init__(self, wandb, project, entity, config, *, name=None, group=None, extra_config=None):
        self.wandb = wandb
        self.config = config
        values = {k: v for k, v in config.to_dict().items() if k != "extra"}
        values.update(extra_config or {})
        try:
            self.run = wandb.init(project=project, entity=entity, config=values, name=name or config.run_name(),
                                  group=group)
        except Exception as exc:
            error = _init_error(wandb, exc)
            if error is None:
                raise
            raise error from None

    def on_epoch_end(self, trainer, row):
        self.run.log({k: v for k, v in row.items() if v is not None}, step=row["epoch"])

    def finish(self, result, dataset=None):
        """Log the test metrics, the confusion matrix and one sample image per class; close the wandb run.

        Parameters
        ----------
        result : ffnn.runs.RunResult
        dataset : Dataset, optional
            The run's data (loaded from its config when omitted).
        """
        if self.run is None:
            return
        try:
            self._log_evaluation(result, dataset)
            # the run's total time under its own name: "seconds" in the history is each epoch's
            summary = {("total_seconds" if k == "seconds" else k): v for k, v in result.summary.items()
                       if v is not None and k != "run_dir"}
            self.run.summary.update(summary)
        finally:
            self.run.finish(exit_code=0 if result.status == "completed" else 1)
            self.run = None

    def abort(self):
        """Close the wandb run as failed (the training raised)."""
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None

    def _log_evaluation(self, result, dataset):
        from .report import class_samples

        if dataset is None:
            from . import data

            try:
                dataset = data.load(self.config.dataset, data_dir=self.config.data_dir, target=self.config.target,
                                    dtype=self.config.dtype, download=False)
            except FFNNError as exc:
                print(f"ffnn: wandb: no confusion matrix or sample images ({exc})", file=sys.stderr)
                return
        if dataset.task != "classification":
            return
        wandb, net = self.wandb, result.net
        names = [str(c) for c in (dataset.class_names or range(net.sizes[-1]))]
        predictions = net.predict(dataset.inputs("test"))
        self.run.log({"confusion_matrix": wandb.plot.confusion_matrix(
            y_true=[int(v) for v in dataset.y_test], preds=[int(v) for v in predictions], class_names=names)})
        samples = class_samples(dataset)
        if samples:
            self.run.log({"samples": [wandb.Image(s["image"], caption=s["name"]) for s in samples]})
