"""RegMean (Jin et al., "Dataless Knowledge Fusion by Merging Weights of Language Models", ICLR 2023).

For a linear layer y = W x, the merged W minimises Σ_t ‖W X_tᵀ − W_t X_tᵀ‖² over each expert's own inputs X_t at that
layer: W = (Σ_t W_t G_t)(Σ_t G_t)⁻¹ with G_t = X_tᵀ X_t, the inputs' Gram matrix. `alpha` shrinks each Gram matrix's
off-diagonal entries (G̃ = α G + (1 − α) diag G), which keeps the system well conditioned; α = 0 gives a per-input-
feature weighted average, α = 1 the unregularised solution. Tensors that are not linear weights (biases, norms,
embeddings) take the experts' simple average, as in the paper.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def shrink(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """α G + (1 − α) diag G."""
    return alpha * gram + (1.0 - alpha) * torch.diag(torch.diagonal(gram))


def regmean_linear(weights: Sequence[torch.Tensor], grams: Sequence[torch.Tensor], alpha: float) -> torch.Tensor:
    """The merged (out, in) weight of one linear layer from the experts' weights and input Gram matrices (in, in)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    shrunk = [shrink(g.double(), alpha) for g in grams]
    total = torch.stack(shrunk).sum(0)
    right = torch.stack([g @ w.double().T for g, w in zip(shrunk, weights)]).sum(0)  # Σ_t G̃_t W_tᵀ: (in, out)
    # an input feature no expert ever saw has a zero row and column: the pseudo-inverse leaves its weights at zero
    # there, so those columns fall back to the experts' mean below
    merged = torch.linalg.lstsq(total, right, driver="gelsd").solution.T if total.is_cpu else (torch.linalg.pinv(total) @ right).T
    unseen = torch.diagonal(total) == 0
    if unseen.any():
        merged[:, unseen] = torch.stack([w.double() for w in weights]).mean(0)[:, unseen]
    return merged.to(weights[0].dtype)
