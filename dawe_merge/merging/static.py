"""Static (data-free) merges: simple average, task arithmetic, TIES.

Every function takes and returns plain state dicts, so they are testable on toy tensors and reusable
outside Lightning.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dawe_merge.merging.state_dict import StateDict


def simple_average(experts: Sequence[Mapping[str, torch.Tensor]]) -> StateDict:
    """θ = mean_t θ_t (fine-tuned models only; the pretrained model is not part of the average)."""
    if not experts:
        raise ValueError("simple_average needs at least one expert.")
    return {k: torch.stack([e[k].float() for e in experts]).mean(0) for k in experts[0]}


def task_arithmetic(
    pretrained: Mapping[str, torch.Tensor], task_vectors: Sequence[Mapping[str, torch.Tensor]], scaling: float
) -> StateDict:
    """θ = θ_0 + λ Σ_t τ_t."""
    merged = {k: v.float().clone() for k, v in pretrained.items()}
    for tv in task_vectors:
        for k in merged:
            merged[k] += scaling * tv[k]
    return merged


def _flatten(tv: Mapping[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    return torch.cat([tv[k].reshape(-1) for k in keys])


def ties_merge(
    pretrained: Mapping[str, torch.Tensor],
    task_vectors: Sequence[Mapping[str, torch.Tensor]],
    scaling: float,
    top_k_percent: float = 20.0,
    merge_func: str = "sum",
) -> StateDict:
    """TIES-merging (trim, elect sign, disjoint merge) over the whole flattened model vector.

    Trim keeps, per task, the entries whose magnitude is at least the k-th smallest with
    k = d − ⌊top_k_percent/100 · d⌋ (ties at the threshold are kept). The elected sign is the sign of
    the sum of the trimmed vectors; entries whose sum is exactly 0 take the majority sign of the total.
    `merge_func` "sum" adds the agreeing entries (FusionBench default), "mean" averages them.
    """
    if merge_func not in ("sum", "mean"):
        raise ValueError(f"merge_func must be 'sum' or 'mean', got {merge_func!r}.")
    if not 0 < top_k_percent <= 100:
        raise ValueError(f"top_k_percent must be in (0, 100], got {top_k_percent}.")
    keys = sorted(pretrained)
    flat = torch.stack([_flatten(tv, keys) for tv in task_vectors])  # (T, D)
    d = flat.shape[1]
    k = d - int(d * top_k_percent / 100)
    if k > 0:
        threshold = flat.abs().kthvalue(k, dim=1, keepdim=True).values
        flat = flat * (flat.abs() >= threshold)
    sign = torch.sign(flat.sum(0))
    sign[sign == 0] = torch.sign(sign.sum()) if sign.sum() != 0 else 1.0
    agree = (torch.sign(flat) == sign) & (flat != 0)
    kept = flat * agree
    merged_tv = kept.sum(0)
    if merge_func == "mean":
        merged_tv = merged_tv / agree.sum(0).clamp(min=1)
    out: StateDict = {}
    offset = 0
    for key in keys:
        n = pretrained[key].numel()
        out[key] = pretrained[key].float() + scaling * merged_tv[offset : offset + n].view_as(pretrained[key])
        offset += n
    return out
