"""Frozen feature extractors that feed DAWE's hypernetwork (never trained, always in eval mode)."""
from __future__ import annotations

import torch
from torch import nn

from dawe_merge.export.spec import RecordsInit
from dawe_merge.models.image_processor import load_image_processor
from dawe_merge.paths import resolve_model_path


class FeatureExtractor(RecordsInit, nn.Module):
    """Maps a batch's raw inputs to (B, d) features. `name` and `dim` go into checkpoints for compatibility checks.

    Each extractor reads the batch keys of its modality (a family's own columns, e.g. `text`), never
    the primary model's prepared inputs: DAWE's features are a separate view of the same examples.
    """

    name: str
    dim: int

    def features(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)  # BatchNorm/dropout stay in inference mode, even under model.train()


class ResNetFeatures(FeatureExtractor):
    """Global-average-pooled last-stage features of a `transformers` ResNet (512-d for ResNet-18).

    Reads the batch's raw images (`image`: PIL images or uint8 arrays) through the ResNet's own image
    processor, a view independent of the primary model's (CLIP's) preprocessing.
    """

    def __init__(self, model: str = "microsoft/resnet-18") -> None:
        """
        Args:
            model: a `transformers` ResNet: local folder or hub id (e.g. microsoft/resnet-18, microsoft/resnet-50).
        """
        super().__init__()
        from transformers import AutoModel

        path = resolve_model_path(model)
        self.name = model
        self.backbone = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self.processor = load_image_processor(path)
        self.dim = int(self.backbone.config.hidden_sizes[-1])

    @torch.no_grad()
    def features(self, batch: dict) -> torch.Tensor:
        device = next(self.backbone.parameters()).device
        processed = self.processor(images=list(batch["image"]), return_tensors="pt")["pixel_values"]
        return self.backbone(pixel_values=processed.to(device)).pooler_output.flatten(1)
