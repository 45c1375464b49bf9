"""How close a bf16 decision must be for fp32 to make it again: a callback, so every method takes it unchanged."""
from __future__ import annotations

import math

import lightning as L

from dawe_merge.errors import ConfigError
from dawe_merge.metrics.close_calls import CLOSE_CALL_ULPS


class CloseCallThreshold(L.Callback):
    """Sets the methods' `close_call_ulps` for a run: inputs whose top two class logits under bf16/fp16 autocast are
    within this many spacings of the dtype are decided again in fp32 (dawe_merge/metrics/close_calls.py).

    The default was chosen on the offline benchmarks' validation data (docs/cli.md); lower trades fp32's decisions on
    near-ties for speed, 0 re-decides exact ties only, a negative value none (plain bf16), `.inf` (YAML's infinity) every input.
    """

    def __init__(self, ulps: float = CLOSE_CALL_ULPS) -> None:
        """
        Args:
            ulps: the margin, in spacings of the low-precision dtype at the top logits, up to which fp32 decides again.
        """
        if math.isnan(ulps):
            raise ConfigError("trainer.callbacks CloseCallThreshold: ulps must be a number (.inf: every input), got nan.")
        self.ulps = ulps

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.close_call_ulps = self.ulps
