"""Sentence encoder backbone: a `transformers` AutoModel with mean pooling and L2 normalisation.

The backbone's own `state_dict` is what experts share and what merging acts on; pooling and
normalisation have no parameters, so a merged state dict always drops straight into it.
"""
from __future__ import annotations

import torch
from torch import nn


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only (what all-MiniLM-L6-v2 was trained with)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class SentenceEncoder(nn.Module):
    """Maps tokenised text to unit-norm sentence embeddings."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        # BERT's pooler (a dense layer on [CLS]) does not feed the mean-pooled embedding: frozen, fine-tuning
        # leaves it at θ0 (a zero task vector) and DDP meets no trainable parameter without a gradient.
        pooler = getattr(backbone, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)

    @property
    def embedding_dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)
