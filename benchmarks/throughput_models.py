"""Random-weight primary models and frozen feature extractors for dawe_throughput.py (no hub access).

Sizes follow the real checkpoints; `tiny` shrinks everything to 2 layers and small widths for tests.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import dawe_merge.families.vision  # noqa: F401  (CLIP's class token batched under per-sample merging, as the vision family runs it)
from dawe_merge.families.text.encoder import SentenceEncoder, mean_pool

Inputs = dict[str, torch.Tensor]


class VisionTower(nn.Module):
    """CLIP vision transformer returning `pooler_output` (post-LayerNorm class token)."""

    def __init__(self, config) -> None:
        super().__init__()
        from transformers import CLIPVisionModel

        self.vision = CLIPVisionModel(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixel_values).pooler_output


class T5MeanEncoder(nn.Module):
    """T5 encoder only (no decoder), mean of the last hidden state over the (unmasked) tokens."""

    def __init__(self, config) -> None:
        super().__init__()
        from transformers import T5EncoderModel

        self.encoder = T5EncoderModel(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)


class ResNetPooled(nn.Module):
    """Frozen image feature extractor stand-in: a ResNet's global-average-pooled last stage."""

    def __init__(self, tiny: bool, depth: int = 18) -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        if tiny:
            sizes, layer = ([8, 16, 16, 32], [1, 1, 1, 1]), "basic"
        elif depth == 50:
            sizes, layer = ([256, 512, 1024, 2048], [3, 4, 6, 3]), "bottleneck"
        else:
            sizes, layer = ([64, 128, 256, 512], [2, 2, 2, 2]), "basic"
        config = ResNetConfig(embedding_size=64 if not tiny else 8, hidden_sizes=sizes[0], depths=sizes[1], layer_type=layer)
        self.backbone = ResNetModel(config)
        self.dim = sizes[0][-1]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixel_values=pixel_values).pooler_output.flatten(1)


class BertPooled(nn.Module):
    """Frozen text feature extractor stand-in: a MiniLM-size BERT with mean pooling (384-d)."""

    def __init__(self, tiny: bool) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        hidden, layers, inter = (32, 1, 64) if tiny else (384, 6, 1536)
        self.vocab_size = 1000 if tiny else 30522
        heads = 4 if tiny else 12
        config = BertConfig(
            vocab_size=self.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter
        )
        self.backbone = BertModel(config)
        self.dim = hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = input_ids % self.vocab_size  # the primary model's vocabulary can be larger (T5: 32128)
        hidden = self.backbone(input_ids=ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)


@dataclass
class Setup:
    """A primary model, an input maker, and the frozen feature extractor used by DAWE's hypernetwork."""

    model: nn.Module
    out_dim: int
    make_inputs: Callable[[int], Inputs]
    extractor: nn.Module
    feature_dim: int


def build_setup(name: str, seq_len: int, tiny: bool, resnet_depth: int = 18) -> Setup:
    """Random-weight models from configs; `tiny` shrinks everything to 2 layers and small widths; images get a
    ResNet-18 or -50 feature extractor (the paper configs' default, and `configs/features/resnet50.yaml`)."""
    if name == "clip-vit-b32":
        from transformers import CLIPVisionConfig

        size = (
            dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=16)
            if tiny
            else dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=32)
        )
        model = VisionTower(CLIPVisionConfig(**size, projection_dim=512, hidden_act="quick_gelu"))
        image = size["image_size"]
        extractor = ResNetPooled(tiny, resnet_depth)

        def image_inputs(b: int) -> Inputs:
            return {"pixel_values": torch.randn(b, 3, image, image)}

        return Setup(model, size["hidden_size"], image_inputs, extractor, extractor.dim)
    if name == "minilm-l6":
        from transformers import BertConfig, BertModel

        size = (
            dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
            if tiny
            else dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
        )
        model = SentenceEncoder(BertModel(BertConfig(**size)))
        out_dim = size["hidden_size"]
    elif name == "t5-base":
        from transformers import T5Config

        size = (
            dict(d_model=32, d_ff=64, num_layers=2, num_heads=4, d_kv=8, vocab_size=1000)
            if tiny
            else dict(d_model=768, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32128)
        )
        model = T5MeanEncoder(T5Config(**size))
        out_dim = size["d_model"]
    else:
        raise ValueError(f"Unknown model {name!r}.")
    vocab = size["vocab_size"]
    if seq_len > 512:
        raise ValueError("--seq-len must be ≤ 512 (the BERT-size models' position embeddings).")
    extractor = BertPooled(tiny)

    def text_inputs(b: int) -> Inputs:
        ids = torch.randint(1, vocab, (b, seq_len))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return Setup(model, out_dim, text_inputs, extractor, extractor.dim)
