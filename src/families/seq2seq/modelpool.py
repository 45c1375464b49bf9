"""The text-to-text family's ModelPool: an encoder-decoder (Flan-T5) whose first decoder step answers with a label word."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from src.errors import ConfigError
from src.families.seq2seq.heads import EntropyOver, LabelWordHead, LabelWordTrainingHead
from src.modelpool.base import ModelPool
from src.modelpool.lora import PeftExperts, lora_settings
from src.paths import resolve_model_path
from src.taskpool.tasks import TaskInfo


class FirstStepLM(nn.Module):
    """An encoder-decoder run for one decoder step from its start token: (B, V) logits of the first answer token."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        start = self.model.config.decoder_start_token_id
        decoder_input_ids = torch.full((input_ids.shape[0], 1), int(start), dtype=torch.long, device=input_ids.device)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits[:, 0]


class Seq2SeqModelPool(PeftExperts, ModelPool):
    """`AutoModelForSeq2SeqLM` primary model; experts are peft LoRA adapters (the paper's) or full fine-tunes.

    Args:
        pretrained: hub id (google/flan-t5-base) or a local folder.
        experts_dir: folder with one sub-folder per task: a peft adapter or a `from_pretrained` model.
        experts: explicit task → reference map; overrides `experts_dir` for the tasks it names.
        max_length: prompt tokens kept (longer prompts are truncated).
        entropy_over: what adaptation takes the entropy of: the first step's whole vocabulary (the original
            DAWE code) or only the label words' first tokens.
        lora: train experts as LoRA adapters (`fit` of an expert): rank, alpha, dropout, target_modules (T5: q, v).
    """

    def __init__(
        self,
        pretrained: str = "google/flan-t5-base",
        experts_dir: str | None = None,
        experts: dict[str, str] | None = None,
        max_length: int = 256,
        entropy_over: EntropyOver = "vocabulary",
        lora: dict | None = None,
    ) -> None:
        super().__init__(pretrained, experts_dir, experts)
        if entropy_over not in ("vocabulary", "label_words"):
            raise ConfigError(f"entropy_over must be 'vocabulary' or 'label_words', got {entropy_over!r}.")
        self.max_length = max_length
        self.entropy_over = entropy_over
        self.lora = lora_settings(lora)

    host_attribute = "model"  # FirstStepLM.model: where adapters attach

    @cached_property
    def pretrained_path(self) -> str:
        return resolve_model_path(self.pretrained)

    @cached_property
    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.pretrained_path)

    def host_model(self, path: str | None = None) -> nn.Module:
        return AutoModelForSeq2SeqLM.from_pretrained(path or self.pretrained_path)

    def load_pretrained(self) -> FirstStepLM:
        return FirstStepLM(self.host_model())

    def load_expert(self, task: str) -> FirstStepLM:
        return FirstStepLM(self.expert_host(task))

    def write_expert(self, task: str, model: nn.Module, head: nn.Module, out: Path) -> None:
        model.model.save_pretrained(out)  # a peft model saves its adapter only
        self.tokenizer.save_pretrained(out)

    # ---- inputs and heads -----------------------------------------------------------------------
    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Tokenise the prompts (the TaskPool already filled each task's template)."""
        encoded = self.tokenizer(list(batch["text"]), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}

    def label_token_ids(self, task: TaskInfo) -> list[int]:
        """Each label word's first token; label words must start differently to be told apart in one step."""
        ids = [self.tokenizer(word, add_special_tokens=False)["input_ids"][:1] for word in task.classes]
        if any(not i for i in ids):
            raise ConfigError(f"Task '{task.name}': a label word tokenises to nothing: {list(task.classes)}.")
        firsts = [i[0] for i in ids]
        if len(set(firsts)) != len(firsts):
            raise ConfigError(
                f"Task '{task.name}': label words {list(task.classes)} do not all start with different tokens "
                f"(first tokens {firsts}); choose words that differ from their first token on."
            )
        return firsts

    def build_head(self, task: TaskInfo, model: nn.Module) -> LabelWordHead:
        return LabelWordHead(self.label_token_ids(task), self.entropy_over)

    def expert_head(self, task: TaskInfo, model: nn.Module) -> LabelWordTrainingHead:
        """Label words plus 'any other token': fine-tuning then teaches the model to generate its label words."""
        return LabelWordTrainingHead(self.label_token_ids(task), self.entropy_over)
