"""The progress a user watches: adaptation and fine-tuning counted in optimiser steps, not "epochs" of a stream.

Adaptation runs `max_steps` over an endless stream of unlabelled batches, so Lightning's epoch bar reads
`Epoch 3/-2`. This bar counts steps k/N with the loss and the last validation average; when the output goes
to a file (no terminal), bars are replaced by one line per monitoring step, so a log shows progress.
"""
from __future__ import annotations

import sys

from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    def __init__(self, to_terminal: bool | None = None) -> None:
        super().__init__()
        self.to_terminal = sys.stderr.isatty() if to_terminal is None else to_terminal
        if not self.to_terminal:
            self.disable()

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # no logger versions here
        return metrics

    def _counts_steps(self, trainer) -> bool:
        return trainer.max_steps is not None and trainer.max_steps > 0

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        if self._counts_steps(trainer):
            bar = self.train_progress_bar
            bar.total, bar.n = trainer.max_steps, trainer.global_step
            bar.set_description("steps")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._counts_steps(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar = self.train_progress_bar
        if bar is not None and not bar.disable:
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if self.to_terminal or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        total = f"/{trainer.max_steps}" if self._counts_steps(trainer) else ""
        shown = ", ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in self.get_metrics(trainer, pl_module).items())
        print(f"step {trainer.global_step}{total}: {shown}", file=sys.stderr, flush=True)
