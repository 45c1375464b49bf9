"""State-dict arithmetic shared by every merging method."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from src.errors import UserFacingError

StateDict = dict[str, torch.Tensor]


class IncompatibleExpertError(UserFacingError, ValueError):
    """An expert cannot be merged with the pretrained model (names or shapes differ)."""


def check_compatible(pretrained: Mapping[str, torch.Tensor], expert: Mapping[str, torch.Tensor], expert_name: str) -> None:
    """Fail before any arithmetic if `expert` is not the pretrained architecture.

    Merging silently over the intersection of keys would hide a wrong checkpoint, so every pretrained
    tensor must exist in the expert with the same shape.
    """
    missing = [k for k in pretrained if k not in expert]
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise IncompatibleExpertError(
            f"Expert '{expert_name}' lacks tensors of the pretrained model: {shown}. "
            "Was it fine-tuned from another architecture? Fine-tune it from the configured pretrained model."
        )
    for key, value in pretrained.items():
        if expert[key].shape != value.shape:
            raise IncompatibleExpertError(
                f"Expert '{expert_name}': tensor '{key}' has shape {tuple(expert[key].shape)}, "
                f"but the pretrained model's has shape {tuple(value.shape)}. "
                "The expert was fine-tuned from a different architecture or size."
            )


def task_vector(pretrained: Mapping[str, torch.Tensor], expert: Mapping[str, torch.Tensor]) -> StateDict:
    """τ = θ_expert − θ_0 over the pretrained model's tensors."""
    return {k: expert[k].detach().float() - v.detach().float() for k, v in pretrained.items()}


def stack_task_vectors(task_vectors: Sequence[Mapping[str, torch.Tensor]]) -> StateDict:
    """Stack T task vectors tensor by tensor into (T, *shape) so merges are one tensordot per tensor."""
    if not task_vectors:
        raise ValueError("At least one task vector is needed to merge.")
    return {k: torch.stack([tv[k] for tv in task_vectors]) for k in task_vectors[0]}
