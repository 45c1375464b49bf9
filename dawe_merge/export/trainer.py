"""The `export` subcommand's Trainer method: the merged model built without an evaluation run.

LightningCLI makes a subcommand of every Trainer method it is told about (`MergeCLI.subcommands`), with
that method's arguments as options; `export` is such a method, so it shares every config, option and
check of `test` and writes only the folder.
"""
from __future__ import annotations

import lightning as L
import torch

from dawe_merge.taskpool.base import TaskPool


class MergeTrainer(L.Trainer):
    def export(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None, ckpt_path: str | None = None) -> None:
        """Build the merged model without evaluating it (the CLI writes it to --export_dir).

        Args:
            model: the method (model.class_path).
            datamodule: the TaskPool: its tasks fix the task order and give the heads.
            ckpt_path: an adaptive method's checkpoint written by `fit` (runs/.../checkpoints/last.ckpt); static merges take none.
        """
        model.prepare(datamodule if isinstance(datamodule, TaskPool) else None)
        if ckpt_path is None:
            return
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)  # checked readable before (run_checks)
        model.on_load_checkpoint(checkpoint)  # as Lightning restores: hooks first (metadata check, selected state), then tensors
        model.load_state_dict(checkpoint["state_dict"], strict=model.strict_loading)
