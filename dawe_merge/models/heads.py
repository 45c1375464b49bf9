"""Frozen zero-shot classification heads built from class descriptions (CLIP-style).

A head fixed before fine-tuning is what makes merging meaningful: every expert learns to meet the
same head, so any merged backbone can be scored against it, and the pretrained backbone gets a real
zero-shot accuracy instead of a random one.
"""
from __future__ import annotations

import torch
from torch import nn


class ZeroShotHead(nn.Module):
    """logits = scale · normalize(embedding) · Wᵀ with W the normalised description embeddings."""

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        self.register_buffer("weight", nn.functional.normalize(class_embeddings.float(), dim=-1))
        self.logit_scale = logit_scale

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * nn.functional.normalize(embeddings, dim=-1) @ self.weight.T


def adaptation_logits(head: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """What test-time adaptation takes the entropy of: `head.adaptation_logits` where a family's head
    defines it (a decoder's whole vocabulary, say), else the head's class logits."""
    scorer = getattr(head, "adaptation_logits", None)
    return head(features) if scorer is None else scorer(features)
