"""The CLIP family's ModelPool: the vision tower is what merges; heads come from the text tower, cached on disk."""
from __future__ import annotations

import copy
import hashlib
import json
import sys
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from dawe_merge.modelpool.base import ModelPool
from dawe_merge.models.heads import ZeroShotHead
from dawe_merge.models.image_processor import load_image_processor
from dawe_merge.paths import resolve_model_path
from dawe_merge.reports.atomic import atomic_path
from dawe_merge.taskpool.tasks import TaskInfo


class CLIPImageEncoder(nn.Module):
    """CLIP's vision tower (the merge candidates) and its visual projection, held as a frozen buffer.

    The projection maps into the space the text tower's class embeddings live in; experts fine-tune
    the tower only, so the projection is θ0's and never merged.
    """

    def __init__(self, vision: nn.Module, projection: torch.Tensor) -> None:
        super().__init__()
        self.vision = vision
        self.register_buffer("projection", projection.detach().clone())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixel_values).pooler_output @ self.projection.T


class CLIPModelPool(ModelPool):
    """CLIP image classification: pretrained `CLIPModel`, experts as fine-tuned `CLIPVisionModel` folders.

    Args:
        pretrained: a CLIPModel: hub id (openai/clip-vit-base-patch32) or a local folder.
        experts_dir: folder with one `CLIPVisionModel` sub-folder per task (what `fit` of an expert writes).
        experts: explicit task → reference map (hub ids such as tanganke/clip-vit-base-patch32_eurosat, or folders).
        head_cache_dir: where zero-shot heads are cached, keyed by model, task, classes and templates.
    """

    input_column = "image"
    load_snippet = (
        "from transformers import CLIPModel, CLIPProcessor\nmodel = CLIPModel.from_pretrained({folder!r})  # merged vision tower\n"
        "processor = CLIPProcessor.from_pretrained({folder!r})"
    )

    def __init__(
        self,
        pretrained: str = "openai/clip-vit-base-patch32",
        experts_dir: str | None = None,
        experts: dict[str, str] | None = None,
        head_cache_dir: str = "runs/zero_shot_heads",
    ) -> None:
        super().__init__(pretrained, experts_dir, experts)
        self.head_cache_dir = head_cache_dir

    @cached_property
    def pretrained_path(self) -> str:
        return resolve_model_path(self.pretrained)

    @cached_property
    def clip(self) -> nn.Module:
        from transformers import CLIPModel

        return CLIPModel.from_pretrained(self.pretrained_path).eval().requires_grad_(False)

    @cached_property
    def processor(self):
        return load_image_processor(self.pretrained_path)

    def load_pretrained(self) -> CLIPImageEncoder:
        from transformers import CLIPVisionModel

        vision = CLIPVisionModel(self.clip.config.vision_config)
        getattr(vision, "vision_model", vision).load_state_dict(self.clip.vision_model.state_dict())  # transformers 4 wraps the tower
        return CLIPImageEncoder(vision, self.clip.visual_projection.weight)

    def load_expert(self, task: str) -> CLIPImageEncoder:
        from transformers import CLIPVisionModel

        return CLIPImageEncoder(CLIPVisionModel.from_pretrained(self.expert_path(task)), self.clip.visual_projection.weight)

    def write_expert(self, task: str, model: nn.Module, head: nn.Module, out: Path) -> None:
        model.vision.save_pretrained(out)

    def save_model(self, model: CLIPImageEncoder, out: Path) -> None:
        """A whole `CLIPModel` (θ0's text tower and projections, the merged vision tower), its processor and tokenizer.

        Whole, so the folder classifies zero-shot as it stands; `CLIPVisionModel.from_pretrained` reads its tower alone.
        """
        clip = copy.deepcopy(self.clip)
        clip.vision_model.load_state_dict(getattr(model.vision, "vision_model", model.vision).state_dict())
        clip.save_pretrained(out)
        self.processor.save_pretrained(out)
        self.tokenizer.save_pretrained(out)

    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Raw images (`image`: PIL images or uint8 arrays) through the model's own image processor."""
        pixels = self.processor(images=list(batch["image"]), return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels.to(device)}

    # ---- zero-shot heads --------------------------------------------------------------------------
    def build_head(self, task: TaskInfo, model: nn.Module) -> ZeroShotHead:
        """Rows = normalised mean over templates of the normalised text embeddings; scale = exp(logit_scale).

        The cache file holds its key; one that is unreadable, of another key or of the wrong shape is named
        on stderr and rebuilt, never used.
        """
        cache, key = self._head_cache_file(task)
        saved = self._read_cached_head(cache, key, task)
        if saved is not None:
            return ZeroShotHead(saved["weight"], float(saved["logit_scale"]))
        weight = self.class_embeddings(task)
        scale = float(self.clip.logit_scale.exp())
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            torch.save({"key": key, "weight": weight, "logit_scale": scale}, tmp)
        return ZeroShotHead(weight, scale)

    def _read_cached_head(self, cache: Path, key: str, task: TaskInfo) -> dict | None:
        if not cache.is_file():
            return None
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            problem = None
            if not isinstance(saved, dict) or saved.get("key") != key:
                problem = "it was written for another model, task or templates"
            elif tuple(saved["weight"].shape) != (task.num_classes, int(self.clip.config.projection_dim)):
                problem = f"its heads have shape {tuple(saved['weight'].shape)}, not ({task.num_classes}, {self.clip.config.projection_dim})"
        except Exception as err:  # truncated or foreign files raise many types; all mean "rebuild it"
            problem = f"it cannot be read ({type(err).__name__})"
        if problem is None:
            return saved
        print(f"warning: zero-shot head cache {cache} is not usable ({problem}); rebuilding it", file=sys.stderr)
        return None

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.pretrained_path)

    @torch.no_grad()
    def class_embeddings(self, task: TaskInfo, chunk: int = 256) -> torch.Tensor:
        templates = task.templates or ("a photo of a {}.",)
        texts = [template.format(name) for name in task.classes for template in templates]
        embeddings = []
        for start in range(0, len(texts), chunk):  # every class and template through the text tower in a few batches
            tokens = self.tokenizer(texts[start : start + chunk], padding=True, truncation=True, return_tensors="pt")
            embeddings.append(_as_tensor(self.clip.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])))
        per_template = nn.functional.normalize(torch.cat(embeddings), dim=-1).view(len(task.classes), len(templates), -1)
        return nn.functional.normalize(per_template.mean(1), dim=-1)

    def _head_cache_file(self, task: TaskInfo) -> tuple[Path, str]:
        key = json.dumps({"model": self.pretrained, "weights": _weights_identity(self.pretrained_path), "task": task.name,
                          "classes": task.classes, "templates": task.templates})  # fmt: skip
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return Path(self.head_cache_dir) / f"{task.name}-{digest}.pt", key


def _as_tensor(output) -> torch.Tensor:
    """`get_text_features` returns a tensor in older transformers, an output object in newer ones."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output if getattr(output, "pooler_output", None) is not None else output[0]


def _weights_identity(folder: str) -> list:
    """Name, size and modification time of the model's weight files: a model re-trained in place gets new heads."""
    files = sorted(p for p in Path(folder).glob("*") if p.suffix in (".safetensors", ".bin"))
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
