"""The sequence-classification family: `AutoModelForSequenceClassification` experts, each keeping its own trained head.

The base model (GPT2Model, BertModel, …) is what merges; each task is read by its expert's own head, which is
never merged (heads of different tasks may have different class counts). `fit` of an expert trains the whole
classifier from θ0 with a fresh head and saves it in transformers' format.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from dawe_merge.errors import ConfigError
from dawe_merge.families.seqcls.heads import ExpertHead, SequenceClassifierBody
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.paths import resolve_model_path
from dawe_merge.taskpool.tasks import TaskInfo


class SeqClsModelPool(ModelPool):
    """θ0 is a base model or a classifier checkpoint; experts are `…ForSequenceClassification` folders or hub ids.

    Args:
        pretrained: the model the experts were fine-tuned from (gpt2, bert-base-uncased, `pkg:<module>`, a folder).
        experts_dir: folder with one classifier sub-folder per task (what `fit` of an expert writes).
        experts: explicit task → reference map (e.g. tanganke/gpt2_cola); overrides `experts_dir` for the tasks it names.
        max_length: tokens kept per input (longer inputs are truncated).
    """

    load_snippet = (
        "import torch\nfrom safetensors.torch import load_file\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "task = \"<task>\"; heads = load_file({folder!r} + \"/heads.safetensors\")\n"
        "head = {{k[len(task) + 12:]: v for k, v in heads.items() if k.startswith(task + \".classifier.\")}}\n"
        "model = AutoModelForSequenceClassification.from_pretrained({folder!r}, num_labels=<classes of task>)  # merged body\n"
        "model.load_state_dict(head, strict=False)  # that task's own head\ntokenizer = AutoTokenizer.from_pretrained({folder!r})\n"
        "inputs = tokenizer([\"a text\"], padding=True, truncation=True, max_length={max_length}, return_tensors=\"pt\")"
    )

    def preprocessing(self) -> dict:
        return {"max_length": self.max_length, "truncation": True, "padding": True}

    def __init__(self, pretrained: str, experts_dir: str | None = None, experts: dict[str, str] | None = None, max_length: int = 128) -> None:
        super().__init__(pretrained, experts_dir, experts)
        self.max_length = max_length

    @cached_property
    def pretrained_path(self) -> str:
        return resolve_model_path(self.pretrained)

    @cached_property
    def tokenizer(self):
        """θ0's tokenizer; a model without a padding token (GPT-2) pads with its unknown/end token, as transformers' examples do."""
        tokenizer = AutoTokenizer.from_pretrained(self.pretrained_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
            if tokenizer.pad_token is None:
                raise ConfigError(f"The tokenizer of '{self.pretrained}' has no padding, unknown or end token to pad batches with.")
        return tokenizer

    def _with_padding(self, model: nn.Module) -> nn.Module:
        """Classifiers that pool the last non-padding token (GPT-2) find it through config.pad_token_id."""
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        return model

    # ---- loading ------------------------------------------------------------------------------
    def load_pretrained(self) -> SequenceClassifierBody:
        """θ0's base model built as a classifier builds it (RoBERTa's has no pooler there, BERT's has), so its tensors are the experts'."""
        with torch.random.fork_rng(devices=[]):  # the dropped head's random init must not move the seeded stream (expert heads, dropout)
            classifier = AutoModelForSequenceClassification.from_pretrained(self.pretrained_path)
        return SequenceClassifierBody(self._with_padding(getattr(classifier, classifier.base_model_prefix)))

    def _classifier(self, task: str) -> nn.Module:
        """The expert as its classifier; refused when transformers had to initialise any of its weights at random
        (a plain base model has no head: its random one would be used as the task's own)."""
        classifier, info = AutoModelForSequenceClassification.from_pretrained(self.expert_path(task), output_loading_info=True)
        missing = sorted(info.get("missing_keys") or ())
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ConfigError(
                f"The expert of task '{task}' ({self.expert_reference(task)}) lacks weights a classifier needs ({shown}): "
                "it is not a fine-tuned sequence classifier (a plain base model has no head). Point it at the folder "
                "AutoModelForSequenceClassification.save_pretrained wrote after fine-tuning."
            )
        return self._with_padding(classifier)

    def load_expert(self, task: str) -> SequenceClassifierBody:
        classifier = self._classifier(task)
        return SequenceClassifierBody(getattr(classifier, classifier.base_model_prefix))

    def build_head(self, task: TaskInfo, model: nn.Module) -> ExpertHead:
        """The expert's own head, checked against the task's number of classes."""
        head = ExpertHead(self._classifier(task.name)).eval()
        if head.num_classes != task.num_classes:
            raise ConfigError(
                f"The expert of task '{task.name}' ({self.expert_reference(task.name)}) has {head.num_classes} labels, the task "
                f"{task.num_classes} classes: it was fine-tuned for another task, or the task's classes are wrong."
            )
        return head

    def restore_head(self, task: TaskInfo, model: nn.Module, state: dict[str, torch.Tensor]) -> ExpertHead:
        """A head from its saved tensors (an exported DAWE folder carries them; the experts need not exist)."""
        config = AutoConfig.from_pretrained(self.pretrained_path, num_labels=task.num_classes)
        head = ExpertHead(self._with_padding(AutoModelForSequenceClassification.from_config(config))).eval()
        head.load_state_dict(state)
        return head

    # ---- expert fine-tuning --------------------------------------------------------------------
    def expert_head(self, task: TaskInfo, model: nn.Module) -> ExpertHead:
        """A fresh, trainable head for the task's classes, initialised as transformers initialises one."""
        config = AutoConfig.from_pretrained(self.pretrained_path, num_labels=task.num_classes,
                                            id2label=dict(enumerate(task.classes)), label2id={c: i for i, c in enumerate(task.classes)})  # fmt: skip
        return ExpertHead(self._with_padding(AutoModelForSequenceClassification.from_config(config)))

    def write_expert(self, task: str, model: SequenceClassifierBody, head: ExpertHead, out: Path) -> None:
        """The whole classifier (fine-tuned body, trained head) in transformers' format, loadable on its own."""
        try:
            head.with_body(model).save_pretrained(out)
        finally:
            head.detach_body()
        self.tokenizer.save_pretrained(out)

    def save_model(self, model: SequenceClassifierBody, out: Path) -> None:
        """The merged base model (AutoModel format) and the tokenizer; the export adds every task's head beside it."""
        model.base.save_pretrained(out)
        self.save_tokenizer(self.tokenizer, out)

    # ---- inputs ---------------------------------------------------------------------------------
    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Tokenise the texts (and the second texts of a sentence-pair task) as the experts were fine-tuned."""
        pair = batch.get("text_pair")
        encoded = self.tokenizer(list(batch["text"]), list(pair) if pair is not None else None, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")  # fmt: skip
        inputs = {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}
        if "token_type_ids" in encoded:  # BERT marks a pair's second text; GPT-2 and RoBERTa tokenizers return none
            inputs["token_type_ids"] = encoded["token_type_ids"].to(device)
        return inputs
