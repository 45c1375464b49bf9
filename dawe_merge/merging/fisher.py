"""Fisher merging (Matena & Raffel, "Merging Models with Fisher-Weighted Averaging", NeurIPS 2022).

Each entry of the merged model is the experts' average weighted by their diagonal Fisher information at that entry,
θ = Σ_t F_t ⊙ θ_t / Σ_t F_t: an expert counts where its predictions are sensitive to the weight. An entry where every
Fisher is zero (a weight no example moved) takes the plain average.

With each expert's own predictions as labels, a confident expert's gradients are small everywhere (log p(ŷ) is near
0), so the least certain expert outweighs the others on every shared weight. `normalized_fishers` divides each
expert's Fisher by its mean over all merged entries: every expert gets the same total weight, and within it the
Fisher still says where it counts.
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


def normalized_fishers(fishers: Sequence[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Each expert's Fisher divided by its mean over every entry of every tensor (left as it is if all zero)."""
    out = []
    for fisher in fishers:
        total = sum(float(f.double().sum()) for f in fisher.values())
        count = sum(f.numel() for f in fisher.values())
        mean = total / count if count else 0.0
        out.append({n: f / mean for n, f in fisher.items()} if mean > 0 else dict(fisher))
    return out
