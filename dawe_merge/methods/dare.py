"""DARE: task vectors sparsified by random drop and rescale (dawe_merge/merging/dare.py), then task arithmetic or TIES."""
from __future__ import annotations

from typing import Literal

from dawe_merge.errors import ConfigError, check_number
from dawe_merge.merging import task_arithmetic, ties_merge
from dawe_merge.merging.dare import drop_and_rescale
from dawe_merge.merging.state_dict import StateDict
from dawe_merge.methods.static import StaticMerge
from dawe_merge.modelpool.base import ModelPool


class DARE(StaticMerge):
    """θ = merge(θ0, DARE(τ_1), …, DARE(τ_T)) with merge = task arithmetic or TIES."""

    method_name = "dare"

    def __init__(
        self,
        modelpool: ModelPool,
        drop_rate: float = 0.5,
        merge: Literal["task_arithmetic", "ties"] = "ties",
        scaling_factor: float = 0.3,
        top_k_percent: float = 20.0,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        """
        Args:
            drop_rate: p, the probability that an entry of a task vector is dropped (survivors are scaled by 1/(1-p)).
            merge: how the sparsified task vectors merge: task_arithmetic or ties.
            scaling_factor: λ of that merge.
            top_k_percent: TIES only: share of each (sparsified) task vector kept by magnitude.
            seed: the drop masks' generator (the same seed gives the same merge anywhere).
        """
        super().__init__(modelpool, name=name)
        check_number("model.init_args.drop_rate", drop_rate, 0.0)
        if drop_rate >= 1.0:
            raise ConfigError(f"model.init_args.drop_rate must be below 1 (every entry dropped leaves no task vector), got {drop_rate}.")
        if merge not in ("task_arithmetic", "ties"):
            raise ConfigError(f"model.init_args.merge must be task_arithmetic or ties, got {merge!r}.")
        self.drop_rate, self.merge_with, self.scaling_factor, self.top_k_percent, self.seed = drop_rate, merge, scaling_factor, top_k_percent, seed

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        sparse = drop_and_rescale(task_vectors, self.drop_rate, self.seed)
        if self.merge_with == "ties":
            return ties_merge(pretrained, sparse, self.scaling_factor, self.top_k_percent)
        return task_arithmetic(pretrained, sparse, self.scaling_factor)
