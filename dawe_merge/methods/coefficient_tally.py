"""The merging coefficients a test run used, summed per input task (pure accounting, no Lightning).

Adaptive methods record each test batch's coefficients here so the report can show which task vectors each task's
inputs were sent to (heatmap rows, per-tensor curves). Sums are kept in float64: after a cross-rank sum the summary
then matches a single process's to rounding of the last digits, whatever order the ranks' sums were added in.
"""
from __future__ import annotations

from typing import Callable

import torch


class CoefficientTally:
    """Running sums of (T, L) coefficients and input counts, keyed by the input's task."""

    def __init__(self, task_names: list[str], num_layers: int) -> None:
        self.task_names, self.num_layers = list(task_names), num_layers
        self.sums: dict[str, tuple[torch.Tensor, int]] = {}

    def add(self, task: str, coefficients: torch.Tensor) -> None:
        """(T, L) shared by a batch counts once; (B, T, L) counts each of its B inputs."""
        per_sample = coefficients if coefficients.dim() == 3 else coefficients.unsqueeze(0)
        total, count = self.sums.get(task, (0.0, 0))
        self.sums[task] = (total + per_sample.double().sum(0).cpu(), count + per_sample.shape[0])

    def sum_over_ranks(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Every rank saw a shard of each task: add the shards (`reduce_sum`, the strategy's all-reduce) so rank 0
        summarises the whole test set. Every rank must call it, also one that saw none of a task's inputs."""
        nothing = torch.zeros((len(self.task_names), self.num_layers), dtype=torch.float64)  # one input's (T, L)
        totals = torch.stack([self.sums.get(t, (nothing, 0))[0] for t in self.task_names])
        counts = torch.tensor([self.sums.get(t, (None, 0))[1] for t in self.task_names], dtype=torch.float64)
        totals, counts = reduce_sum(totals), reduce_sum(counts)
        self.sums = {t: (totals[i], int(counts[i])) for i, t in enumerate(self.task_names) if counts[i] > 0}

    def summary(self, layer_names: list[str] | None) -> dict | None:
        """Mean (T, L) coefficients per input task; `layer_names` (layer-wise merges) adds the per-tensor means."""
        if not self.sums:
            return None
        means = {t: total / count for t, (total, count) in self.sums.items()}
        seen = [t for t in self.task_names if t in means]
        overall = torch.stack([means[t] for t in seen]).mean(0)
        return {
            "tasks": list(self.task_names),
            "by_input_task": [means[t].mean(-1).tolist() for t in seen],
            "per_tensor": overall.tolist() if layer_names is not None else None,
            "tensor_names": list(layer_names) if layer_names is not None else None,
        }
