"""expert_kl's targets: each task's expert's softened predictions on that task's adaptation inputs, computed once.

They are computed in the TaskPool's fixed feature batches (the same targets on every rank and on a resume), one
expert in memory at a time, and kept on the CPU keyed by the input's index in its task's adaptation set.
"""
from __future__ import annotations

import torch
from torch import nn

from dawe_merge.modelpool.base import ModelPool, parameter_state_dict
from dawe_merge.models.heads import adaptation_logits


@torch.no_grad()
def expert_targets(modelpool: ModelPool, heads: nn.ModuleDict, loaders: dict, device: torch.device, temperature: float) -> dict[str, dict[int, torch.Tensor]]:
    """task → input index → softmax(expert logits / temperature), from each task's expert and its own head."""
    reference = parameter_state_dict(modelpool.pretrained_model())
    targets: dict[str, dict[int, torch.Tensor]] = {}
    for task, loader in loaders.items():
        expert = modelpool.load_checked_expert(task, reference).eval().to(device)
        targets[task] = {}
        for batch in loader:
            logits = adaptation_logits(heads[task], expert(**modelpool.prepare_inputs(batch, device)))
            for i, q in zip(batch["index"], (logits.float() / temperature).softmax(-1).cpu()):
                targets[task][int(i)] = q
        del expert
    return targets
