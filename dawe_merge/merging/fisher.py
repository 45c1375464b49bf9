"""Fisher merging (Matena & Raffel, "Merging Models with Fisher-Weighted Averaging", NeurIPS 2022).

Each entry of the merged model is the experts' average weighted by their diagonal Fisher information at that entry,
θ = Σ_t F_t ⊙ θ_t / Σ_t F_t: an expert counts where its predictions are sensitive to the weight. An entry where every
Fisher is zero (a weight no example moved) takes the plain average.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def fisher_weighted_average(experts: Sequence[torch.Tensor], fishers: Sequence[torch.Tensor], epsilon: float = 0.0) -> torch.Tensor:
    """Σ_t F_t θ_t / Σ_t F_t entry by entry (F + epsilon as the weights), the plain mean where Σ_t F_t is zero."""
    weights = torch.stack([f.double() + epsilon for f in fishers])
    values = torch.stack([e.double() for e in experts])
    total = weights.sum(0)
    merged = torch.where(total > 0, (weights * values).sum(0) / total.where(total > 0, torch.ones_like(total)), values.mean(0))
    return merged.to(experts[0].dtype)
