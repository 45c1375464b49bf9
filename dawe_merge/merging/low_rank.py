"""Task vectors that stay factored: a LoRA expert's τ = scale · B A, never expanded unless a merge needs it.

A task vector is a dict tensor-name → update, each update either a dense tensor or a `LowRankDelta`.
Static merges that look at single entries (TIES, the average) take `dense(...)`; the merged forward
keeps the factors so per-sample merging costs two thin products per layer instead of a dense weight
per sample.
"""
from __future__ import annotations

from collections.abc import Sequence
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


@dataclass
class FactorStack:
    """T low-rank updates of one (out, in) weight, laid out for batched products.

    A (T·r, in) stacks the A_t; B (out, T·r) holds the scaled B_t side by side, so
    Σ_t c_t B_t A_t = (B · c repeated r times) @ A, and per sample Σ_t c_t B_t (A_t x) is two products
    with transposed views, never a copy. Ranks may differ between tasks: shorter factors are padded
    with zeros, which add nothing.
    """

    A: torch.Tensor
    B: torch.Tensor
    tasks: int

    @property
    def rank(self) -> int:
        return self.A.shape[0] // self.tasks

    def to(self, *args, **kwargs) -> FactorStack:
        return FactorStack(self.A.to(*args, **kwargs), self.B.to(*args, **kwargs), self.tasks)

    def dense(self) -> torch.Tensor:
        """(T, out, in): each task's update expanded."""
        r = self.rank
        return torch.einsum("otr,tri->toi", self.B.view(self.B.shape[0], self.tasks, r), self.A.view(self.tasks, r, -1))

    @classmethod
    def of(cls, updates: Sequence[LowRankDelta | None], shape: torch.Size) -> FactorStack:
        rank = max((u.rank for u in updates if u is not None), default=1)
        A = torch.zeros(len(updates) * rank, shape[1])
        B = torch.zeros(shape[0], len(updates) * rank)
        for t, u in enumerate(updates):
            if u is not None:
                A[t * rank : t * rank + u.rank] = u.A.float()
                B[:, t * rank : t * rank + u.rank] = u.scale * u.B.float()
        return cls(A, B, len(updates))
