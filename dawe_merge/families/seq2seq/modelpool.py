"""The text-to-text family's ModelPool: an encoder-decoder (Flan-T5) answering with a label word (first step or greedy decode) or a number."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from dawe_merge.errors import ConfigError, check_number
from dawe_merge.families.seq2seq.decoder import FirstStepLM
from dawe_merge.families.seq2seq.generation_heads import GeneratedLabelHead, GeneratedNumberHead
from dawe_merge.families.seq2seq.heads import EntropyOver, LabelWordHead, LabelWordTrainingHead
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.modelpool.lora import PeftExperts, lora_config
from dawe_merge.paths import resolve_model_path
from dawe_merge.taskpool.tasks import TaskInfo

EvaluateBy = Literal["label_words", "generation"]


class Seq2SeqModelPool(PeftExperts, ModelPool):
    """`AutoModelForSeq2SeqLM` primary model; experts are peft LoRA adapters (the paper's) or full fine-tunes.

    Args:
        pretrained: hub id (google/flan-t5-base) or a local folder.
        experts_dir: folder with one sub-folder per task: a peft adapter or a `from_pretrained` model.
        experts: explicit task → reference map; overrides `experts_dir` for the tasks it names.
        max_length: prompt tokens kept (longer prompts are truncated).
        entropy_over: what adaptation takes the entropy of: the first step's whole vocabulary (the original
            DAWE code) or only the label words' first tokens.
        lora: train experts as LoRA adapters (`fit` of an expert): `peft.LoraConfig` keys (r, lora_alpha, lora_dropout,
            target_modules: q, v for T5, ...).
        evaluate_by: how `test` reads the answer: "label_words" scores the label words' first tokens at the first
            decoder step (one step, no decode); "generation" decodes greedily with `generate` and compares the
            text with the label words (exact match, the reference's evaluation). Regression tasks (STS-B) need
            "generation": their answer is a number. Adaptation always reads the first step.
        max_new_tokens: longest answer decoded with evaluate_by "generation" (label words and "{:.1f}" numbers
            take a few tokens; the reference decoded up to transformers' default length of 20).
    """

    def __init__(
        self,
        pretrained: str = "google/flan-t5-base",
        experts_dir: str | None = None,
        experts: dict[str, str] | None = None,
        max_length: int = 256,
        entropy_over: EntropyOver = "vocabulary",
        lora: dict | None = None,
        evaluate_by: EvaluateBy = "label_words",
        max_new_tokens: int = 20,
    ) -> None:
        super().__init__(pretrained, experts_dir, experts)
        if entropy_over not in ("vocabulary", "label_words"):
            raise ConfigError(f"entropy_over must be 'vocabulary' or 'label_words', got {entropy_over!r}.")
        if evaluate_by not in ("label_words", "generation"):
            raise ConfigError(f"evaluate_by must be 'label_words' or 'generation', got {evaluate_by!r}.")
        check_number("model.init_args.modelpool.init_args.max_new_tokens", max_new_tokens, 1)
        self.max_length = max_length
        self.entropy_over = entropy_over
        self.lora = lora_config(lora)
        self.evaluate_by = evaluate_by
        self.max_new_tokens = max_new_tokens

    load_snippet = (
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\nmodel = AutoModelForSeq2SeqLM.from_pretrained({folder!r})\n"
        "tokenizer = AutoTokenizer.from_pretrained({folder!r})\n"
        "inputs = tokenizer([\"a text\"], padding=True, truncation=True, max_length={max_length}, return_tensors=\"pt\")"
    )

    def preprocessing(self) -> dict:
        return {"max_length": self.max_length, "truncation": True, "padding": True}
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
        self.save_model(model, out)  # a peft model saves its adapter only

    def save_model(self, model: FirstStepLM, out: Path) -> None:
        """The `AutoModelForSeq2SeqLM` weights (LoRA experts arrive merged into them) plus the tokenizer."""
        model.model.save_pretrained(out)
        self.save_tokenizer(self.tokenizer, out)

    # ---- inputs and heads -----------------------------------------------------------------------
    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Tokenise the prompts (the TaskPool already filled each task's template)."""
        encoded = self.tokenizer(list(batch["text"]), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}

    def evaluation_inputs(self, batch: dict, device: torch.device) -> dict:
        """With evaluate_by "generation", the prompts plus how many tokens to decode (FirstStepLM then generates)."""
        inputs = self.prepare_inputs(batch, device)
        return {**inputs, "max_new_tokens": self.max_new_tokens} if self.evaluate_by == "generation" else inputs

    def decode(self, sequences: torch.Tensor) -> list[str]:
        """Generated ids → answer texts, special tokens (start, end, padding) dropped."""
        return self.tokenizer.batch_decode(sequences, skip_special_tokens=True)

    def label_token_ids(self, task: TaskInfo, distinct: bool = True) -> list[int]:
        """Each label word's first token; scoring one step needs them to differ (`distinct`), exact match does not."""
        ids = [self.tokenizer(word, add_special_tokens=False)["input_ids"][:1] for word in task.classes]
        if any(not i for i in ids):
            raise ConfigError(f"Task '{task.name}': a label word tokenises to nothing: {list(task.classes)}.")
        firsts = [i[0] for i in ids]
        if distinct and len(set(firsts)) != len(firsts):
            raise ConfigError(
                f"Task '{task.name}': label words {list(task.classes)} do not all start with different tokens "
                f"(first tokens {firsts}); choose words that differ from their first token on."
            )
        return firsts

    def build_head(self, task: TaskInfo, model: nn.Module) -> nn.Module:
        """Label-word scores of the first step, or (evaluate_by "generation") the decoded label word or number."""
        if task.is_regression:
            if self.evaluate_by != "generation":
                raise ConfigError(
                    f"Task '{task.name}' is a regression task (its answer is a number, scored by Spearman): set "
                    "model.init_args.modelpool.init_args.evaluate_by: generation; label-word scoring needs label words."
                )
            if self.entropy_over == "label_words":
                raise ConfigError(
                    f"Task '{task.name}' is a regression task and has no label words to take the entropy over: set "
                    "model.init_args.modelpool.init_args.entropy_over: vocabulary."
                )
            return GeneratedNumberHead(self.decode)
        if self.evaluate_by == "generation":
            return GeneratedLabelHead(self.label_token_ids(task, distinct=False), task.classes, self.decode, self.entropy_over)
        return LabelWordHead(self.label_token_ids(task), self.entropy_over)

    def expert_head(self, task: TaskInfo, model: nn.Module) -> LabelWordTrainingHead:
        """Label words plus 'any other token': fine-tuning then teaches the model to generate its label words.

        A regression task's answer is a number of several tokens, which a first-token loss cannot teach:
        its experts are loaded (the reference's hub adapters), not fine-tuned here.
        """
        if task.is_regression:
            raise ConfigError(
                f"Task '{task.name}' is a regression task: experts are fine-tuned here on the first answer token against "
                "label words, which a number answer does not have. Load its fine-tuned adapter through modelpool.experts "
                "(e.g. tanganke/flan-t5-base_glue-stsb_lora-16) instead of fitting one."
            )
        return LabelWordTrainingHead(self.label_token_ids(task), self.entropy_over)
