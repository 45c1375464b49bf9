"""DARE (Yu et al., "Language Models are Super Mario", ICML 2024): drop and rescale each task vector before merging.

Every entry of every τ_t is dropped with probability p and the survivors are divided by 1 − p, so each task vector
keeps its expected value while most of its entries become zero; the sparse vectors then merge by task arithmetic or
TIES. The masks come from one seeded generator, drawn task by task and tensor by tensor in name order, so a seed gives
the same merge on every machine and device.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dawe_merge.merging.state_dict import StateDict


def drop_and_rescale(task_vectors: Sequence[Mapping[str, torch.Tensor]], drop_rate: float, seed: int = 0) -> list[StateDict]:
    """Each τ_t with every entry kept with probability 1 − drop_rate and scaled by 1 / (1 − drop_rate)."""
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}.")
    generator = torch.Generator().manual_seed(seed)
    dropped = []
    for tv in task_vectors:
        kept: StateDict = {}
        for name in sorted(tv):
            values = tv[name].float()
            mask = torch.rand(values.shape, generator=generator) >= drop_rate
            kept[name] = values * mask.to(values.device) / (1.0 - drop_rate)
        dropped.append(kept)
    return dropped
