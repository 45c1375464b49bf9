"""`fit` resumed from a checkpoint draws the same random numbers (dropout masks) as the run that was never stopped.

Lightning restores the model, optimiser and loops but not torch's generators; this callback keeps their states in the
checkpoint (as tensors, so checkpoints load with weights_only=True) and puts them back when training starts, not at
load time, because Lightning's set-up between loading and the first step may draw numbers the uninterrupted run never
drew at that point. The CLI adds it to every run, and `TestTimeAdaptation.adapt` to its own.
"""
from __future__ import annotations

import lightning as L
import torch

KEY = "rng_states"  # the checkpoint entry (the one checkpoints written before this callback hold too)


class RandomStateInCheckpoints(L.Callback):
    def __init__(self) -> None:
        self.to_restore: dict | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[KEY] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint[KEY]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.to_restore = checkpoint.get(KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.to_restore is not None:
            torch.set_rng_state(self.to_restore["torch"])
            if "cuda" in self.to_restore and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self.to_restore["cuda"])
            self.to_restore = None
