"""Static merges evaluated with `test`: pretrained, individual experts, simple average, task arithmetic, TIES."""
from __future__ import annotations

import torch
from torch import nn

from src.merging import simple_average, task_arithmetic, ties_merge
from src.merging.state_dict import StateDict
from src.methods.base import MergedModelModule
from src.modelpool.text_pool import TextModelPool, parameter_state_dict


class Pretrained(MergedModelModule):
    """θ_0 with each task's frozen zero-shot head: the floor every merge should beat."""

    method_name = "pretrained"

    def build(self, pretrained: nn.Module) -> None:
        self.encoder = pretrained.eval().requires_grad_(False)

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.encoder(**inputs)


class Individual(MergedModelModule):
    """Each expert on its own task: the ceiling merges are normalised by."""

    method_name = "individual"

    def build(self, pretrained: nn.Module) -> None:
        reference = parameter_state_dict(pretrained.backbone)
        self.experts = nn.ModuleDict(
            {t: self.modelpool.load_checked_expert(t, reference).eval().requires_grad_(False) for t in self.task_names}
        )

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.experts[task](**inputs)


class StaticMerge(MergedModelModule):
    """One merged backbone shared by every task; subclasses give the state-dict merge."""

    def build(self, pretrained: nn.Module) -> None:
        reference = parameter_state_dict(pretrained.backbone)
        task_vectors = self.modelpool.task_vectors(self.task_names, reference)
        merged = self.merge(reference, task_vectors)
        pretrained.backbone.load_state_dict(merged, strict=False)
        self.encoder = pretrained.eval().requires_grad_(False)

    def merge(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        raise NotImplementedError

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.encoder(**inputs)


class SimpleAverage(StaticMerge):
    """θ = mean of the experts."""

    method_name = "simple_average"

    def merge(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        experts = [{k: pretrained[k] + tv[k] for k in pretrained} for tv in task_vectors]
        return simple_average(experts)


class TaskArithmetic(StaticMerge):
    """θ = θ_0 + λ Σ_t τ_t."""

    method_name = "task_arithmetic"

    def __init__(self, modelpool: TextModelPool, scaling_factor: float = 0.3, logit_scale: float = 20.0, name: str | None = None) -> None:
        """
        Args:
            scaling_factor: λ applied to the sum of task vectors (reference default 0.3).
        """
        super().__init__(modelpool, logit_scale=logit_scale, name=name)
        self.scaling_factor = scaling_factor

    def merge(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        return task_arithmetic(pretrained, task_vectors, self.scaling_factor)


class TiesMerging(StaticMerge):
    """TIES: trim each τ_t to its top-k % magnitudes, elect a sign per entry, merge the agreeing entries."""

    method_name = "ties"

    def __init__(
        self,
        modelpool: TextModelPool,
        scaling_factor: float = 0.3,
        top_k_percent: float = 20.0,
        merge_func: str = "sum",
        logit_scale: float = 20.0,
        name: str | None = None,
    ) -> None:
        """
        Args:
            scaling_factor: λ applied to the merged task vector (reference default 0.3).
            top_k_percent: share of each task vector's entries kept by magnitude (reference default 20).
            merge_func: "sum" (FusionBench default) or "mean" (the TIES paper) of the agreeing entries.
        """
        super().__init__(modelpool, logit_scale=logit_scale, name=name)
        self.scaling_factor = scaling_factor
        self.top_k_percent = top_k_percent
        self.merge_func = merge_func

    def merge(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        return ties_merge(pretrained, task_vectors, self.scaling_factor, self.top_k_percent, self.merge_func)
