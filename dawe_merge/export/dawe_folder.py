"""A DAWE folder: everything an adapted DAWE needs to run again, without the run, its experts or a TaskPool.

    dawe_config.json          tasks (classes), mode, merged tensor names, θ0 reference and digest,
                              how to rebuild the family's pool and the feature extractor
    hypernetwork.safetensors  the hypernetwork with its feature standardisation
    heads.safetensors         each task's head tensors, for families whose heads are the experts' own
    task_vectors.safetensors  per merged tensor: the T task vectors (dense, optionally bfloat16), or
                              LoRA factors kept factored (A stacked over tasks, scaled B side by side)
    README.md, merge_info.json  the model card

θ0 is referenced, not copied (it is the one model every user already has); its digest is checked on
load, because the task vectors mean nothing on another base model.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dawe_merge.errors import UserFacingError
from dawe_merge.export.dawe_model import DAWEModel
from dawe_merge.export.spec import instantiate, tensors_digest
from dawe_merge.merging.low_rank import FactorStack
from dawe_merge.modelpool.base import parameter_state_dict
from dawe_merge.models.hypernetwork import Hypernetwork
from dawe_merge.per_sample.merged_forward import TaskVectorMerger
from dawe_merge.taskpool.tasks import TaskInfo

FORMAT = "dawe-folder/1"
CONFIG = "dawe_config.json"


class ExportLoadError(UserFacingError, ValueError):
    """An exported folder that is missing, incomplete, or made for another base model."""


def dawe_config(model: DAWEModel) -> dict:
    """What `load_dawe` rebuilds the model from (the tensors aside)."""
    pool = model.modelpool
    return {
        "format": FORMAT,
        "tasks": [asdict(model.task_infos[t]) if t in model.task_infos else {"name": t} for t in model.task_names],
        "mode": model.mode,
        "merged_tensors": list(model.merger.names),
        "pretrained": pool.pretrained,
        "pretrained_digest": tensors_digest(parameter_state_dict(model.merger.model)),
        # experts are not needed: their task vectors travel in the folder
        "modelpool": pool.init_spec(drop=("experts", "experts_dir", "lora")),
        "feature_extractor": model.feature_extractor.init_spec(),
        "hypernetwork": {"in_features": model.hypernetwork.in_features, "out_features": model.hypernetwork.out_features,
                         "hidden_layers": model.hypernetwork.hidden_layers, "standardize": model.hypernetwork.standardize},  # fmt: skip
    }


def task_vector_tensors(merger: TaskVectorMerger, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The merger's task vectors as named tensors: `lora_A.`/`lora_B.` (factored) or `dense.` (T, *shape)."""
    out = {}
    for name in merger.names:
        updates = merger.updates(name)
        if isinstance(updates, FactorStack):
            out[f"lora_A.{name}"], out[f"lora_B.{name}"] = updates.A.contiguous().clone(), updates.B.contiguous().clone()
            continue
        taus = updates.tau if hasattr(updates, "tau") else updates[:-1]
        out[f"dense.{name}"] = taus.to(dtype or taus.dtype).contiguous().clone()
    return {k: v.cpu() for k, v in out.items()}


def save_dawe(model: DAWEModel, out: Path, task_vector_dtype: str | None = None) -> dict:
    """Write the folder's config and tensors into `out` (the card is written by the caller); returns the config."""
    dtype = {None: None, "float32": None, "bfloat16": torch.bfloat16}[task_vector_dtype]
    config = dawe_config(model)
    config["num_tasks"] = model.merger.num_tasks
    save_file(task_vector_tensors(model.merger, dtype), str(out / "task_vectors.safetensors"))
    save_file({k: v.detach().cpu().contiguous() for k, v in model.hypernetwork.state_dict().items()}, str(out / "hypernetwork.safetensors"))
    heads = {f"{t}.{k}": v.detach().cpu().contiguous() for t, head in model.heads.items() for k, v in head.state_dict().items()}
    if heads:
        save_file(heads, str(out / "heads.safetensors"))
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return config


def load_dawe(folder: str | Path, device: str | torch.device = "cpu") -> DAWEModel:
    """The runnable DAWE model of an exported folder (θ0 and the feature extractor loaded from their references)."""
    folder = Path(folder)
    config = _read_config(folder)
    pool = instantiate(config["modelpool"])
    pretrained = pool.pretrained_model()
    digest = tensors_digest(parameter_state_dict(pretrained))
    if digest != config["pretrained_digest"]:
        raise ExportLoadError(
            f"The pretrained model '{pool.pretrained}' is not the one '{folder}' was adapted on (weights digest "
            f"{digest[:12]}…, expected {config['pretrained_digest'][:12]}…): its task vectors only apply to that model. "
            "Point modelpool.init_args.pretrained in dawe_config.json at the original weights."
        )
    infos = [TaskInfo(**{**t, "classes": tuple(t["classes"]), "templates": tuple(t.get("templates", ()))}) for t in config["tasks"] if "classes" in t]
    saved = _tensors(folder / "heads.safetensors") if (folder / "heads.safetensors").is_file() else {}
    heads = nn.ModuleDict({i.name: pool.restore_head(i, pretrained, _prefixed(saved, i.name)).requires_grad_(False) for i in infos})
    tensors = _tensors(folder / "task_vectors.safetensors")
    stacked, low_precision = {}, False
    for name in config["merged_tensors"]:
        if f"lora_A.{name}" in tensors:
            stacked[name] = FactorStack(tensors[f"lora_A.{name}"], tensors[f"lora_B.{name}"], config["num_tasks"])
        elif f"dense.{name}" in tensors:
            stacked[name] = tensors[f"dense.{name}"]
            low_precision |= stacked[name].dtype == torch.bfloat16
        else:
            raise ExportLoadError(f"'{folder}/task_vectors.safetensors' lacks the task vectors of '{name}': the folder is incomplete; export it again.")
    merger = TaskVectorMerger(pretrained, stacked, store_dtype=torch.bfloat16 if low_precision else None)
    shape = config["hypernetwork"]
    hypernetwork = Hypernetwork(shape["in_features"], shape["out_features"], shape["hidden_layers"], 0.0, shape["standardize"])
    try:
        hypernetwork.load_state_dict(_tensors(folder / "hypernetwork.safetensors"))
    except RuntimeError as err:  # missing, unexpected or misshapen tensors
        raise ExportLoadError(f"'{folder / 'hypernetwork.safetensors'}' does not fit dawe_config.json's hypernetwork ({str(err).splitlines()[0][:160]}); export the model again.") from None
    features = instantiate(config["feature_extractor"]).requires_grad_(False)
    if features.dim != shape["in_features"]:
        raise ExportLoadError(f"The feature extractor gives {features.dim} features, the hypernetwork reads {shape['in_features']}.")
    names = [t["name"] for t in config["tasks"]]
    model = DAWEModel(pool, features, merger, hypernetwork, heads, [next((i for i in infos if i.name == n), n) for n in names], config["mode"])
    return model.to(device).eval()


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file of the folder, or one line naming it when it is cut short or not safetensors at all."""
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types (and OSError) for damaged files
        raise ExportLoadError(f"'{path}' cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120]}): the file is damaged or cut short; export the model again.") from None


def _prefixed(tensors: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
    return {k[len(task) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{task}.")}


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG
    if not path.is_file():
        what = "a merged model: load it with transformers' from_pretrained" if (folder / "merge_info.json").is_file() else "not an export"
        raise ExportLoadError(f"'{folder}' has no {CONFIG}: it is {what}.")
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise ExportLoadError(f"'{path}' is not valid JSON ({err}); export the model again.") from err
    if config.get("format") != FORMAT:
        raise ExportLoadError(f"'{path}' has format {config.get('format')!r}; this version reads {FORMAT!r}.")
    for part in ("task_vectors.safetensors", "hypernetwork.safetensors"):
        if not (folder / part).is_file():
            raise ExportLoadError(f"'{folder}' lacks {part}: the folder is incomplete; export it again.")
    return config
