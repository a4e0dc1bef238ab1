"""Trainer callbacks shared by the tests."""


class StopAtEpoch:
    """Ask the trainer to stop during epoch ``epoch`` (as Ctrl-C does)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer):
        if trainer.epoch + 1 == self.epoch:
            trainer.stop_requested = True
