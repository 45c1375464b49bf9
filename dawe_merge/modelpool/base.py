"""The ModelPool: what the core asks of a model family.

Methods type this base, so LightningCLI accepts any family's pool. A family implements:

* `load_pretrained()` → θ0 as a module whose `forward(**prepare_inputs(batch))` returns what the heads
  read, (B, D). Its parameters are the merge candidates; parts that must never merge (a CLIP text
  tower, a frozen head) are not inside it.
* `load_expert(task)` → the same module type with the expert's weights (full fine-tunes), used by
  the default `expert_update`; a LoRA family overrides `expert_update` to return `LowRankDelta`s.
* `prepare_inputs(batch, device)` → the module's keyword inputs (tokenise, process images, ...).
* `build_head(task_info, model)` → a frozen module mapping (B, D) to (B, C) logits: zero-shot from a
  text encoder or CLIP's text tower, an expert's own linear head, label-word scores. A head whose
  evaluation outputs are not class logits names its metric (`task_metric()`, dawe_merge/metrics/task_metrics.py).
* optionally `evaluation_inputs(batch, device)` → the module's inputs at test time (default: `prepare_inputs`).
* `write_expert(task, model, head, out)` → save a fine-tuned expert where `load_expert` finds it.
* `save_model(model, out)` → write a (merged) module in its `transformers` `from_pretrained` format,
  with what reads its inputs (tokenizer, image processor), so it loads without this project.
* `input_column`: the batch key of the raw inputs (`text`, `image`), what `predict` reads from a user file;
  `load_snippet`: the Python that loads what `save_model` wrote, for the model card.

The base does the rest once: expert references by task name, compatibility checks, and task vectors
restricted to the tensors some expert changed.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dawe_merge.errors import ConfigError, UserFacingError
from dawe_merge.export.spec import RecordsInit
from dawe_merge.merging.low_rank import LowRankDelta, TaskVector
from dawe_merge.merging.state_dict import IncompatibleExpertError, StateDict, check_compatible, task_vector
from dawe_merge.paths import ModelLoadError, ModelNotFoundError, relative_to_working_folder, resolve_model_path
from dawe_merge.taskpool.tasks import TaskInfo


class InvalidWeightsError(UserFacingError, ValueError):
    """Weights that cannot be merged: NaN/inf entries, or an expert identical to the pretrained model."""


class MissingExpertError(UserFacingError, KeyError):
    """A TaskPool task has no expert in the ModelPool."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def parameter_state_dict(module: nn.Module) -> StateDict:
    """The merge candidates of a module: its parameters (buffers such as position ids are not trained)."""
    return {k: v.detach() for k, v in module.named_parameters()}


class ModelPool(RecordsInit):
    """The pretrained model plus one expert per task, matched by task name (never by position).

    Args:
        pretrained: the primary model (a local folder, a hub id, or a family-specific reference).
        experts_dir: folder with one sub-folder per task (what `fit` of an expert writes).
        experts: explicit task → reference map; overrides `experts_dir` for the tasks it names.
    """

    accepts_adapters = False  # whether experts may be peft adapters (a LoRA-capable family sets it)
    input_column = "text"  # the batch key holding the raw inputs
    load_snippet = "# load with the family's own transformers class: {folder!r}"  # a saved model's loading code, for its card

    def preprocessing(self) -> dict:
        """How inputs are prepared before the model (e.g. tokens kept): recorded in exports and filled into `load_snippet`."""
        return {}

    def save_tokenizer(self, tokenizer, out: Path) -> None:
        """The tokenizer with the tokens this pool keeps as its `model_max_length`, where transformers reads it:
        `tokenizer(text, truncation=True)` on the saved folder then truncates as the run did."""
        tokenizer.save_pretrained(out)
        max_length = self.preprocessing().get("max_length")
        config_path = Path(out) / "tokenizer_config.json"
        if max_length is not None and config_path.is_file():
            config = json.loads(config_path.read_text())
            config["model_max_length"] = max_length
            config_path.write_text(json.dumps(config, indent=2) + "\n")

    def __init__(self, pretrained: str, experts_dir: str | None = None, experts: dict[str, str] | None = None) -> None:
        self.pretrained = pretrained
        # jsonargparse hands `--…modelpool.init_args.experts_dir null` to a nested class as the string 'None'
        self.experts_dir = None if experts_dir in ("None", "null") else experts_dir
        self.experts = dict(experts or {})

    # ---- what a family implements -----------------------------------------------------------------
    def load_pretrained(self) -> nn.Module:
        raise NotImplementedError

    def load_expert(self, task: str) -> nn.Module:
        raise NotImplementedError

    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def build_head(self, task: TaskInfo, model: nn.Module) -> nn.Module:
        raise NotImplementedError

    def restore_head(self, task: TaskInfo, model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
        """A head as an export saved it (`state`: its tensors). By default rebuilt from θ0 (zero-shot and label-word heads
        are functions of θ0 and the task); a family whose heads come from its experts builds one from the tensors."""
        return self.build_head(task, model)

    def evaluation_inputs(self, batch: dict, device: torch.device) -> dict:
        """The module's keyword inputs at test time: by default those of training and adaptation.

        A family whose model answers differently when evaluated (a decoder generating its answer instead
        of scoring one step) adds the option here; it reaches the module through every method's forward,
        merged per batch or per sample, because it is an input like the others.
        """
        return self.prepare_inputs(batch, device)

    def write_expert(self, task: str, model: nn.Module, head: nn.Module, out: Path) -> None:
        raise NotImplementedError

    def save_model(self, model: nn.Module, out: Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot save a merged model yet.")

    def expert_names(self) -> list[str]:
        """The tasks this pool has experts for: `experts` keys, then `experts_dir`'s sub-folders (sorted)."""
        names = list(self.experts)
        if self.experts_dir is not None and Path(self.experts_dir).is_dir():
            names += sorted(p.name for p in Path(self.experts_dir).iterdir() if p.is_dir() and p.name not in self.experts)
        return names

    def prepare_for_finetuning(self, model: nn.Module) -> nn.Module:
        """The model `fit` of an expert trains: by default all of it; a LoRA pool wraps it with adapters."""
        return model

    def expert_head(self, task: TaskInfo, model: nn.Module) -> nn.Module:
        """The head an expert fine-tunes against: by default the frozen head every method uses.

        A family whose experts train their own head returns a trainable one here (and saves it in
        `write_expert`).
        """
        return self.build_head(task, model)

    # ---- references -------------------------------------------------------------------------------
    def expert_reference(self, task: str) -> str:
        if task in self.experts:
            return self.experts[task]
        if self.experts_dir is not None:
            return str(Path(self.experts_dir) / task)
        raise MissingExpertError(
            f"Task '{task}' has no expert: set modelpool.experts_dir (one sub-folder per task) or "
            f"add '{task}' to modelpool.experts."
        )

    def expert_path(self, task: str) -> str:
        """The expert's reference resolved to a local folder or hub id, or a message saying how to make it."""
        reference = self.expert_reference(task)
        try:
            return resolve_model_path(reference, allow_adapter=self.accepts_adapters)
        except ModelNotFoundError as err:
            raise MissingExpertError(
                f"Expert for task '{task}' not found at '{reference}'{relative_to_working_folder(reference)}. Fine-tune it first: "
                f"python main.py fit --config <benchmark config> --config <expert config> --model.init_args.task {task}"
            ) from err

    def expert_output_dir(self, task: str) -> Path:
        """Where `fit` of an expert saves it, so that this pool finds it afterwards."""
        if self.experts_dir is None and task not in self.experts:
            raise ConfigError("Set modelpool.experts_dir: it is where the fine-tuned expert is saved.")
        return Path(self.expert_reference(task))

    def save_expert(self, task: str, model: nn.Module, head: nn.Module, info: dict) -> Path:
        """Write the expert (family format) and `expert_info.json` beside it."""
        out = self.expert_output_dir(task)
        out.mkdir(parents=True, exist_ok=True)
        self.write_expert(task, model, head, out)
        (out / "expert_info.json").write_text(json.dumps({"task": task, **info, "pretrained": self.pretrained}, indent=2) + "\n")
        return out

    # ---- checked loading --------------------------------------------------------------------------
    def pretrained_model(self) -> nn.Module:
        """`load_pretrained()`, with unreadable files and NaN/inf weights reported as such."""
        model = _readable(self.load_pretrained, f"the pretrained model '{self.pretrained}'")
        _check_finite(parameter_state_dict(model), f"the pretrained model '{self.pretrained}'")
        return model

    def load_checked_expert(self, task: str, reference: StateDict) -> nn.Module:
        """The expert, after checking it is readable, finite, and has every merge candidate with the same shape."""
        where = f"the expert of task '{task}' ({self.expert_reference(task)})"
        expert = _readable(lambda: self.load_expert(task), where)
        weights = parameter_state_dict(expert)
        check_compatible(reference, weights, expert_name=f"{task} ({self.expert_reference(task)})")
        _check_finite({k: weights[k] for k in reference}, where)
        return expert

    def expert_update(self, task: str, reference: StateDict) -> TaskVector:
        """τ_t over the candidates: θ_t − θ0, dense (full fine-tunes); LoRA families return factors."""
        return task_vector(reference, parameter_state_dict(self.load_checked_expert(task, reference)))

    def task_vectors(self, tasks: Sequence[str], model: nn.Module) -> list[TaskVector]:
        """τ_t for each task (in the TaskPool's order) over the tensors at least one expert changed.

        Names are `model`'s parameter names. A tensor no expert changed (BERT's pooler under mean
        pooling, every tensor LoRA left alone) is not a merged tensor: it has no layer-wise
        coefficient and costs nothing. A task's vector may lack a tensor another task changed.
        """
        reference = parameter_state_dict(model)
        updates, changed = [], set()
        for task in tasks:
            where = f"the expert of task '{task}' ({self.expert_reference(task)})"
            update = _readable(lambda: self.expert_update(task, reference), where)
            # dense experts were checked as loaded; factored updates never pass through a loaded model
            _check_finite({f"{n}.{part}": getattr(u, part) for n, u in update.items() if isinstance(u, LowRankDelta) for part in "AB"}, where)
            nonzero = {n for n, u in update.items() if _nonzero(u)}
            if not nonzero:
                raise InvalidWeightsError(
                    f"{where[0].upper()}{where[1:]} is identical to the pretrained model (its task vector is zero): it was not "
                    "fine-tuned, or its path points at the pretrained model. Fine-tune it, or fix modelpool.experts/experts_dir."
                )
            updates.append(update)
            changed |= nonzero
        unknown = sorted({n for u in updates for n in u} - set(reference))
        if unknown:
            raise ConfigError(f"Expert updates name tensors the pretrained model does not have: {unknown[:5]}")
        for task, update in zip(tasks, updates):
            wrong = [n for n, u in update.items() if tuple(u.shape) != tuple(reference[n].shape)]
            if wrong:
                n = wrong[0]
                raise IncompatibleExpertError(
                    f"Expert '{task}' ({self.expert_reference(task)}): the update of '{n}' has shape {tuple(update[n].shape)}, "
                    f"the pretrained model's tensor {tuple(reference[n].shape)}. It was made for another model."
                )
        merged = [n for n in reference if n in changed]  # the model's order: it is the layer index
        return [{n: u[n] for n in merged if n in u} for u in updates]


# errors that mean the bytes of a file are damaged, as opposed to a file that is whole but does not fit
DAMAGED = ("SafetensorError", "HeaderTooLarge", "UnpicklingError", "EOFError", "BadZipFile", "PytorchStreamReader", "incomplete", "invalid load key",
           "Error while deserializing", "unexpected EOF")  # fmt: skip


def _readable(load, where: str):
    """Run a loader; a library error while reading weights becomes one line naming what was being read.

    Only errors that mean damaged bytes get the advice to copy the file again; anything else (a size
    mismatch, another architecture) is reported with its cause, whole, in one line.
    """
    try:
        return load()
    except UserFacingError:
        raise
    except Exception as err:  # safetensors, torch and transformers raise many types for one cause: an unreadable file
        cause = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
        described = f"{type(err).__name__}: {cause}"
        if any(mark in described for mark in DAMAGED):
            raise ModelLoadError(f"Cannot read {where}: {described[:300]}. The file may be truncated or corrupted: copy or fine-tune it again.") from err
        raise ModelLoadError(f"Cannot load {where}: {described[:600]}") from err


def _check_finite(weights: dict[str, torch.Tensor], where: str) -> None:
    bad = [name for name, tensor in weights.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise InvalidWeightsError(
            f"{where[0].upper()}{where[1:]} has NaN/inf values in {len(bad)} tensor(s), first '{bad[0]}'. "
            "Such weights give meaningless merges: fine-tune it again (lower the learning rate if training diverged)."
        )


def _nonzero(update: torch.Tensor | LowRankDelta) -> bool:
    return update.any() if isinstance(update, LowRankDelta) else bool(update.any())
