"""Checks on what a run is given, made before any work, so a bad input costs seconds and never a result.

Each raises a `UserFacingError` that names the file or option and the fix; `user_facing_cause` finds
such an error however jsonargparse or Lightning wrapped it, so `main.py` prints it as one line.
"""
from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path

import torch
import yaml

from dawe_merge.errors import ConfigError, UserFacingError
from dawe_merge.shipped_configs import CONFIG_FLAGS


class ResultsNotWritableError(UserFacingError, OSError):
    """A results folder that cannot be written: permissions, a full disk."""


class CheckpointReadError(UserFacingError, ValueError):
    """A --ckpt_path that is missing, unreadable, or not a Lightning checkpoint."""


def user_facing_cause(err: BaseException) -> UserFacingError | None:
    """The first UserFacingError in the chain of causes and contexts of `err`, if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, UserFacingError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def check_config_files(argv: list[str]) -> None:
    """Every YAML file given to --config (or --trainer/--model/--data) exists and parses; the error names it."""
    for i, arg in enumerate(argv):
        flag, _, inline = arg.partition("=")
        if flag not in CONFIG_FLAGS:
            continue
        value = inline or (argv[i + 1] if i + 1 < len(argv) else "")
        if not value.endswith((".yaml", ".yml")):
            continue
        path = Path(value)
        if not path.is_file():
            raise ConfigError(
                f"Config file '{value}' given to {flag} does not exist (working dir: {Path.cwd()}), and no shipped config has that "
                "name (`merge-cli --help` names them: e.g. benchmarks/text_minilm.yaml, methods/dawe_task_wise.yaml)."
            )
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err)
            raise ConfigError(f"Config file '{value}' is not valid YAML{where}: {problem}. Fix that line.") from err


def check_checkpoint_use(path: str | None, loads_checkpoints: bool, method: str) -> None:
    """A --ckpt_path is given only to a method with a trainable part to restore."""
    if path is not None and not loads_checkpoints:
        raise ConfigError(
            f"--ckpt_path was given to '{method}', which has nothing trained to load (a static merge); drop --ckpt_path."
        )


def check_checkpoint_file(path: str | None, stage: str) -> None:
    """A --ckpt_path names a checkpoint file that torch reads safely (Lightning's own names pass through)."""
    if path is None or path in ("last", "best", "hpc", "registry"):
        return
    file = Path(path)
    if not file.is_file():
        raise CheckpointReadError(f"--ckpt_path '{path}' does not exist. `{stage}` needs a checkpoint written by `fit` (runs/.../checkpoints/).")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not a checkpoint this run can read"
        raise CheckpointReadError(f"--ckpt_path '{path}' is not a readable checkpoint ({type(err).__name__}). Point it at a .ckpt written by `fit`.") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointReadError(f"--ckpt_path '{path}' is not a Lightning checkpoint (no state_dict). Point it at a .ckpt written by `fit`.")


def check_writable(folder: Path, probe_bytes: int = 1 << 20) -> None:
    """Fail before evaluating if the report folder cannot be written, or its disk has no room for the results.

    The probe writes and syncs real bytes (an empty file succeeds on a full disk), under a name unique to this
    run so that two runs starting together never remove each other's probe.
    """
    probe = folder / f".write_probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"\0" * probe_bytes)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "its disk is full" if full else (err.strerror or str(err))
        raise ResultsNotWritableError(f"Results folder '{folder}' cannot be written ({why}); free space or choose another with --results_dir.") from err
    finally:
        with contextlib.suppress(OSError):  # a folder that could not be made has no probe to remove
            probe.unlink(missing_ok=True)


def check_exportable(model, stage: str, export_dir: str | None = None, overwrite: bool = False) -> None:
    """--export_dir only where the run ends with one merged model, into a folder it may fill: refused before any work."""
    from dawe_merge.export.writer import check_export_target
    from dawe_merge.methods.base import MergedModelModule

    if export_dir is not None:
        _check_not_a_source(model, Path(export_dir))
        check_export_target(Path(export_dir), overwrite)

    if type(model).merged_module is MergedModelModule.merged_module:
        raise ConfigError(f"--export_dir was given to '{model.report_name}', which has no merged model to export; drop --export_dir.")
    if stage not in ("fit", "test", "export"):
        raise ConfigError(f"--export_dir works with `export`, `test` (and an adaptive method's `fit`), not `{stage}`.")
    if stage == "fit" and not model.loads_checkpoints:
        raise ConfigError(f"'{model.report_name}' is not trained by `fit`: write it with `export --export_dir ...`.")


def _check_not_a_source(model, out: Path) -> None:
    """An export must not replace, or be written into, anything the run reads its models from."""
    pool = getattr(model, "modelpool", None)
    features = getattr(model, "feature_extractor", None)
    sources = {
        "the pretrained model": getattr(pool, "pretrained", None),
        "the experts' folder": getattr(pool, "experts_dir", None),
        **{f"the expert of '{task}'": path for task, path in (getattr(pool, "experts", None) or {}).items()},
        "the feature extractor": getattr(features, "name", None),
        "the hypernetwork to start from": getattr(model, "hypernetwork_init", None),
    }
    target = out.expanduser().resolve()
    for what, source in sources.items():
        if not isinstance(source, str) or not Path(source).expanduser().exists():
            continue  # hub ids and absent paths are not folders an export could touch
        path = Path(source).expanduser().resolve()
        overlaps = target == path or path.is_relative_to(target) or (path.is_dir() and target.is_relative_to(path))
        if overlaps:
            raise ConfigError(f"--export_dir '{out}' would write over {what} ('{source}'), which this run reads: choose another folder.")
