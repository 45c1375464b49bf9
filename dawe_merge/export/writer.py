"""Write what a method produced: a `from_pretrained` folder (static merges, AdaMerging) or a DAWE folder.

A folder appears whole or not at all: it is written beside its target under a temporary name, then
renamed. An earlier export at the same place is replaced only when asked (`overwrite`) and only when it
holds nothing but the files its `merge_info.json` lists (its inventory): a file the user added, or a
folder this project did not write, is refused before any work, so the project never deletes what it did
not write. Every export carries its recipe (`recipe.yaml`): the config that makes it again.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from dawe_merge.errors import ConfigError
from dawe_merge.export.card import created, environment, model_card
from dawe_merge.export.dawe_folder import save_dawe
from dawe_merge.export.dawe_model import DAWEModel
from dawe_merge.export.spec import file_digests, tensors_digest
from dawe_merge.modelpool.base import parameter_state_dict
from dawe_merge.paths import hub_snapshot, is_hub_id

DAWE_USAGE = (
    "from dawe_merge.export import load_dawe  # this project, installed\nmodel = load_dawe({folder!r})\n"
    'logits, coefficients = model([...inputs...], task="<task>", return_coefficients=True)'
)
RECIPE = "recipe.yaml"  # the resolved config of the run that wrote the export: `merge-cli export --config recipe.yaml`


def export_method(
    method, out: Path, task_vector_dtype: str | None = None, command: str | None = None, recipe: str | None = None, overwrite: bool = False
) -> Path:
    """Export `method`'s merged model (built first if needed) to `out`; returns `out`.

    `recipe` (YAML) is written as recipe.yaml; `overwrite` lets an earlier export of this project at `out` be replaced.
    """
    if task_vector_dtype not in (None, "float32", "bfloat16"):
        raise ConfigError(f"task_vector_dtype must be 'float32' or 'bfloat16', got {task_vector_dtype!r}.")
    module = method.merge()
    _check_target(out, overwrite)
    tmp = out.with_name(f".tmp-{out.name}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        info = export_info(method, module, command)
        if isinstance(module, DAWEModel):
            save_dawe(module, tmp, task_vector_dtype)
            usage, library = DAWE_USAGE, "dawe-merge"
        else:
            method.modelpool.save_model(module, tmp)
            _save_heads(method.heads, tmp)
            usage, library = method.modelpool.load_snippet, "transformers"
        if recipe is not None:
            (tmp / RECIPE).write_text(recipe)
        info["recipe"] = RECIPE if recipe is not None else None
        usage = usage.format(folder=str(out), **info["preprocessing"])
        model_card(info, usage, library).save(tmp / "README.md")
        info["files"] = sorted([*_files(tmp), "merge_info.json"])  # the inventory: what a later export may replace
        (tmp / "merge_info.json").write_text(json.dumps(info, indent=2) + "\n")
        _readable_by_all(tmp)
        _check_target(out, overwrite)  # again: the folder may have changed during the evaluation
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _readable_by_all(folder: Path) -> None:
    """Files 0644 and folders 0755 whatever the umask: an export is meant to be shared and uploaded."""
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def check_export_target(out: Path, overwrite: bool = False) -> None:
    """An export may fill a new or empty folder, or (with `overwrite`) replace an earlier export holding only its
    inventory's files; the place must be writable. Anything else is refused, naming what is in the way."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--export_dir '{out}' is a file: choose a folder path.")
    if out.is_dir() and any(out.iterdir()):
        foreign = _not_in_inventory(out)
        if foreign and _is_export_without_inventory(out):
            raise ConfigError(
                f"--export_dir '{out}' holds an export written before exports listed their files, so what it holds beside "
                "them cannot be told apart: remove it yourself, or choose another folder."
            )
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ConfigError(
                f"--export_dir '{out}' holds files this project did not write there ({shown}): an export replaces only an "
                "earlier export's own files. Move them out, or choose another folder."
            )
        if not overwrite:
            raise ConfigError(
                f"--export_dir '{out}' holds an earlier export: give --export_overwrite to replace it (only the files its "
                "merge_info.json lists), or choose another folder."
            )
    _check_writable_place(out)


def _not_in_inventory(out: Path) -> list[str]:
    """The files of `out` that its merge_info.json does not list (all of them when there is no inventory)."""
    present = _files(out)
    try:
        inventory = set(json.loads((out / "merge_info.json").read_text()).get("files") or ())
    except (OSError, ValueError, AttributeError):
        inventory = set()
    return [f for f in present if f not in inventory]


def _is_export_without_inventory(out: Path) -> bool:
    try:
        return "files" not in json.loads((out / "merge_info.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def _check_writable_place(out: Path) -> None:
    """The first existing folder on the way to `out` must be a folder in which one can be made (probed, then removed)."""
    place = out.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise ConfigError(f"--export_dir '{out}' cannot be made: '{place}' is a file, not a folder.")
    try:
        probe = Path(tempfile.mkdtemp(prefix=".export-probe-", dir=place))
        probe.rmdir()
    except OSError as err:
        raise ConfigError(f"--export_dir '{out}' cannot be written ('{place}': {err.strerror or err}); choose another folder.") from None


def _check_target(out: Path, overwrite: bool) -> None:
    check_export_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)


def _save_heads(heads: nn.ModuleDict, folder: Path) -> None:
    """Each task's frozen head tensors (zero-shot class embeddings, label-word token ids), keyed `<task>.<name>`."""
    tensors = {f"{task}.{k}": v.detach().cpu().contiguous() for task, head in heads.items() for k, v in head.state_dict().items()}
    if tensors:
        save_file(tensors, str(folder / "heads.safetensors"))


def export_info(method, module: nn.Module, command: str | None) -> dict:
    """merge_info.json: the method and its parameters, coefficients, experts by file digest, tasks, report, command."""
    pool = method.modelpool
    theta0 = module.merger.model if isinstance(module, DAWEModel) else None
    parameters = method.init_spec(drop=("modelpool", "feature_extractor"))
    info = {
        "method": method.report_name,
        "class_path": parameters["class_path"],
        "parameters": parameters["init_args"],
        "pretrained": pool.pretrained,
        "pretrained_digest": tensors_digest(parameter_state_dict(theta0 if theta0 is not None else pool.pretrained_model())),
        "tasks": [_task_entry(t, method.task_infos.get(t)) for t in method.task_names],
        "heads": {t: {"type": type(h).__name__, **{k: getattr(h, k) for k in ("logit_scale", "entropy_over") if hasattr(h, k)}}
                  for t, h in method.heads.items()},  # fmt: skip
        "coefficients": method.learned(),
        "preprocessing": pool.preprocessing(),
        "experts": {t: _expert_files(pool, t) for t in method.task_names},
        "report": method.test_report,
        "command": command,
        "created": created(),
        "environment": environment(),
    }
    if isinstance(module, DAWEModel):
        info["feature_extractor"] = module.feature_extractor.name
    return info


def _task_entry(name: str, info) -> dict:
    """A task as its head was built: classes (in label order), the templates that embedded them (CLIP), the metric."""
    if info is None:
        return {"name": name, "classes": None}
    entry = {"name": name, "classes": list(info.classes), "metric": info.metric}
    if info.templates:
        entry["templates"] = list(info.templates)
    return entry


def _expert_files(pool, task: str) -> dict:
    reference = pool.expert_reference(task)
    try:
        path = pool.expert_path(task)
        folder = hub_snapshot(path, allow_patterns=["*.safetensors", "*.bin", "*.json"]) if is_hub_id(path) else Path(path)
        return {"reference": reference, "files": file_digests(folder)}
    except Exception as err:  # the card still names the expert when its files are gone since the merge
        return {"reference": reference, "files": {}, "note": f"not hashed ({type(err).__name__})"}
