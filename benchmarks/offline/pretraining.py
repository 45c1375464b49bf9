"""What the offline benchmarks' own pretraining runs share: a one-cycle AdamW module, a short fit, an atomic save.

Families pretrain stand-ins of hub models (a small CLIP, a small T5) where no checkpoint ships offline;
each gives only its loss. The loop is Lightning's; the folder is written beside its place and renamed,
so a killed run never leaves a half-written model where `make` looks for one.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import torch
from torch import nn


class OneCycleModule(L.LightningModule):
    """Trains `model` on `loss(batch)` with AdamW under a one-cycle learning-rate schedule of `steps` steps."""

    def __init__(self, model: nn.Module, lr: float, steps: int, weight_decay: float = 0.01) -> None:
        super().__init__()
        self.model, self.lr, self.steps, self.weight_decay = model, lr, steps, weight_decay

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr, total_steps=self.steps, pct_start=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def fit_steps(module: OneCycleModule, loader) -> None:
    """`module.steps` optimisation steps over `loader` (cycled), no logger or checkpoints: the result is the saved folder."""
    trainer = L.Trainer(max_steps=module.steps, accelerator="auto", devices=1, logger=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(module, loader)


def save_atomically(out: str, *parts) -> None:
    """`save_pretrained` of every part into `<out>.partial`, then renamed to `out`."""
    target, partial = Path(out), Path(f"{out}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    for part in parts:
        part.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
