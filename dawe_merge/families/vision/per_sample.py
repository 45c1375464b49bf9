"""CLIP's vision embeddings under per-sample merging: their class token is their own parameter.

Without this, the embeddings module is the one block of a ViT that the merged forward runs once per sample
(dawe_merge/per_sample/layers.py falls back to a loop for modules with merged tensors of their own), which on a GPU
costs B times its kernels. Its forward expands `class_embedding` (d,) to (B, 1, d); given (B, 1, d) instead, the
same expand keeps each sample's own token, so one call is exact (tests/test_merged_forward.py checks it).
"""
from __future__ import annotations

from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

from dawe_merge.per_sample.layers import register_batched_parameters

register_batched_parameters(CLIPVisionEmbeddings, class_embedding=lambda per_sample: per_sample.unsqueeze(1))
