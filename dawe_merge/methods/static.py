"""Static merges evaluated with `test`: pretrained, individual experts, simple average, task arithmetic, TIES."""
from __future__ import annotations

import torch
from torch import nn

from dawe_merge.merging import simple_average, task_arithmetic, ties_merge
from dawe_merge.merging.low_rank import dense
from dawe_merge.merging.state_dict import StateDict
from dawe_merge.methods.base import MergedModelModule
from dawe_merge.modelpool.base import ModelPool, parameter_state_dict


class Pretrained(MergedModelModule):
    """θ_0 with each task's frozen head: the floor every merge should beat."""

    method_name = "pretrained"
    role = "reference"

    def build(self, pretrained: nn.Module) -> None:
        self.encoder = pretrained.eval().requires_grad_(False)

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.encoder(**inputs)

    def merged_module(self) -> nn.Module:
        return self.encoder


class Individual(MergedModelModule):
    """Each expert on its own task: the ceiling merges are normalised by."""

    method_name = "individual"
    role = "reference"

    def build(self, pretrained: nn.Module) -> None:
        reference = parameter_state_dict(pretrained)
        self.experts = nn.ModuleDict(
            {t: self.modelpool.load_checked_expert(t, reference).eval().requires_grad_(False) for t in self.task_names}
        )

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.experts[task](**inputs)


class StaticMerge(MergedModelModule):
    """One merged backbone shared by every task; subclasses give the state-dict merge."""

    def build(self, pretrained: nn.Module) -> None:
        task_vectors = self.modelpool.task_vectors(self.task_names, pretrained)
        params = parameter_state_dict(pretrained)
        merged_names = list(dict.fromkeys(n for tv in task_vectors for n in tv))
        reference = {n: params[n] for n in merged_names}
        # entry-wise merges need dense updates; a tensor a task left alone is a zero update for it
        dense_vectors = [{n: dense(tv[n]) if n in tv else torch.zeros_like(reference[n]) for n in merged_names} for tv in task_vectors]
        merged = self.merge_state(reference, dense_vectors)
        pretrained.load_state_dict({n: v.to(params[n].dtype) for n, v in merged.items()}, strict=False)
        self.encoder = pretrained.eval().requires_grad_(False)

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        raise NotImplementedError

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.encoder(**inputs)

    def merged_module(self) -> nn.Module:
        return self.encoder


class SimpleAverage(StaticMerge):
    """θ = mean of the experts."""

    method_name = "simple_average"

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        experts = [{k: pretrained[k] + tv[k] for k in pretrained} for tv in task_vectors]
        return simple_average(experts)


class TaskArithmetic(StaticMerge):
    """θ = θ_0 + λ Σ_t τ_t."""

    method_name = "task_arithmetic"

    def __init__(self, modelpool: ModelPool, scaling_factor: float = 0.3, name: str | None = None) -> None:
        """
        Args:
            scaling_factor: λ applied to the sum of task vectors (reference default 0.3).
        """
        super().__init__(modelpool, name=name)
        self.scaling_factor = scaling_factor

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        return task_arithmetic(pretrained, task_vectors, self.scaling_factor)


class TiesMerging(StaticMerge):
    """TIES: trim each τ_t to its top-k % magnitudes, elect a sign per entry, merge the agreeing entries."""

    method_name = "ties"

    def __init__(
        self,
        modelpool: ModelPool,
        scaling_factor: float = 0.3,
        top_k_percent: float = 20.0,
        merge_func: str = "sum",
        name: str | None = None,
    ) -> None:
        """
        Args:
            scaling_factor: λ applied to the merged task vector (reference default 0.3).
            top_k_percent: share of each task vector's entries kept by magnitude (reference default 20).
            merge_func: "sum" (FusionBench default) or "mean" (the TIES paper) of the agreeing entries.
        """
        super().__init__(modelpool, name=name)
        self.scaling_factor = scaling_factor
        self.top_k_percent = top_k_percent
        self.merge_func = merge_func

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        return ties_merge(pretrained, task_vectors, self.scaling_factor, self.top_k_percent, self.merge_func)
