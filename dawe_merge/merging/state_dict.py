"""State-dict arithmetic shared by every merging method."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dawe_merge.errors import UserFacingError
from dawe_merge.merging.low_rank import FactorStack, LowRankDelta, Update, dense

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


def stack_task_vectors(task_vectors: Sequence[Mapping[str, Update]]) -> dict[str, torch.Tensor | FactorStack]:
    """Stack T task vectors tensor by tensor so merges are one product per tensor.

    Dense updates become (T, *shape); a tensor whose updates are all low-rank (or absent) stays
    factored as a `FactorStack`. A task that did not change a tensor another one did contributes zeros.
    """
    if not task_vectors:
        raise ValueError("At least one task vector is needed to merge.")
    names = list(dict.fromkeys(n for tv in task_vectors for n in tv))
    stacked: dict[str, torch.Tensor | FactorStack] = {}
    for name in names:
        updates = [tv.get(name) for tv in task_vectors]
        shape = next(u.shape for u in updates if u is not None)
        if all(u is None or isinstance(u, LowRankDelta) for u in updates):
            stacked[name] = FactorStack.of(updates, shape)
        else:
            stacked[name] = torch.stack([torch.zeros(shape) if u is None else dense(u).float() for u in updates])
    return stacked
