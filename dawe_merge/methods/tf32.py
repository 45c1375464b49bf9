"""`--trainer.callbacks+=dawe_merge.methods.TF32`: fp32 matrix products on TF32 tensor cores, for a run that asks.

On a GPU with tensor cores an fp32 product in TF32 (a 10-bit mantissa for the inputs, fp32 accumulation) runs several
times faster, and the per-layer rule of per-sample merging then prices arithmetic as tensor-core arithmetic. It changes
results in the fourth significant digit, so it is off unless given (benchmarks/README.md measures the difference).
"""
from __future__ import annotations

import lightning as L
import torch


class TF32(L.Callback):
    """Sets `torch.set_float32_matmul_precision("high")` for the run and restores the previous setting after it."""

    def __init__(self) -> None:
        self.previous: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.previous is not None:
            torch.set_float32_matmul_precision(self.previous)
