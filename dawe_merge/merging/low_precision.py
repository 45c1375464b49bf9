"""Dense task vectors stored in a lower precision (bf16) than the model, θ0 kept in the model's own precision.

The stack of T task vectors is what grows with the number of tasks (T × the model's size); θ0 is one copy.
Storing only the task vectors in bf16 halves that term, while θ0, to which small updates are added, keeps
full precision. A merge is θ0 + (c · τ), the product in the store's precision (its accumulation is fp32
on CPU and GPU), so autograd saves the bf16 stack itself, never an fp32 copy of it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LowPrecisionStack:
    """τ (T, *shape) in the store dtype, θ0 (*shape) in the model's dtype."""

    tau: torch.Tensor
    theta0: torch.Tensor

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the merged tensors (the model's): workspaces for them are allocated like θ0."""
        return self.theta0.dtype

    @property
    def device(self) -> torch.device:
        return self.theta0.device

    def element_size(self) -> int:
        return self.theta0.element_size()

    def rows(self, start: int, end: int) -> LowPrecisionStack:
        """Output rows [start, end) of a weight: its task vectors' and θ0's."""
        return LowPrecisionStack(self.tau[:, start:end], self.theta0[start:end])

    def mix(self, coef: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """θ0 + Σ_t coef[..., t] τ_t; coef (T,) → θ0.shape, (B, T) → (B, *θ0.shape), written into `out` when given."""
        delta = torch.matmul(coef.to(self.tau.dtype), self.tau.flatten(1))
        theta = self.theta0.flatten()
        shape = (*coef.shape[:-1], *self.theta0.shape)
        if out is None:
            return (theta + delta).view(shape)
        target = out[: delta.numel()].view(delta.shape)
        return torch.add(theta, delta, out=target).view(shape)
