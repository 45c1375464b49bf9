"""Task vectors that stay factored: a LoRA expert's τ = scale · B A, never expanded unless a merge needs it.

A task vector is a dict tensor-name → update, each update either a dense tensor or a `LowRankDelta`.
Static merges that look at single entries (TIES, the average) take `dense(...)`; the merged forward
keeps the factors so per-sample merging costs two thin products per layer instead of a dense weight
per sample.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass
class LowRankDelta:
    """τ = scale · B @ A for a weight of shape (out, in): A is (r, in), B is (out, r)."""

    A: torch.Tensor
    B: torch.Tensor
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.A.dim() != 2 or self.B.dim() != 2 or self.A.shape[0] != self.B.shape[1]:
            raise ValueError(f"LowRankDelta needs A (r, in) and B (out, r); got A {tuple(self.A.shape)}, B {tuple(self.B.shape)}.")

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.B.shape[0], self.A.shape[1]))

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    def dense(self) -> torch.Tensor:
        return self.scale * (self.B.float() @ self.A.float())

    def any(self) -> bool:
        return bool(self.A.any()) and bool(self.B.any()) and self.scale != 0


Update = torch.Tensor | LowRankDelta
TaskVector = dict[str, Update]


def dense(update: Update) -> torch.Tensor:
    return update.dense() if isinstance(update, LowRankDelta) else update


def densify(task_vector: Mapping[str, Update]) -> dict[str, torch.Tensor]:
    """Every update as a dense tensor (for merges that act entry by entry)."""
    return {name: dense(u) for name, u in task_vector.items()}


@dataclass
class FactorStack:
    """T low-rank updates of one weight: A (T, r, in), B (T, out, r) with each scale folded into B.

    Ranks may differ between tasks: shorter factors are padded with zero rows/columns, which adds
    nothing to the product.
    """

    A: torch.Tensor
    B: torch.Tensor

    @classmethod
    def of(cls, updates: Sequence[LowRankDelta | None], shape: torch.Size) -> FactorStack:
        rank = max((u.rank for u in updates if u is not None), default=1)
        A = torch.zeros(len(updates), rank, shape[1])
        B = torch.zeros(len(updates), shape[0], rank)
        for t, u in enumerate(updates):
            if u is not None:
                A[t, : u.rank] = u.A.float()
                B[t, :, : u.rank] = u.scale * u.B.float()
        return cls(A, B)
