"""Lightning loggers and checkpoints in the run folder (runs/<benchmark>/<method> unless --trainer.default_root_dir).

A method config cannot name the run folder (it is chosen per run), so a logger whose `save_dir` is `<run>` is held back
when the CLI instantiates the config and built once the folder is known, with the folder as its `save_dir`.
Wherever a logger writes, checkpoints stay in <run>/checkpoints, where resuming, `test --ckpt_path` and the Makefile
find them (Lightning would otherwise move them under the logger's versioned folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import instantiate_class

from dawe_merge.errors import MissingPackageError

RUN_FOLDER = "<run>"  # a logger's save_dir that means the run folder


def _as_dict(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else dict(value)


def _wants_run_folder(item: Any) -> bool:
    """A logger config (`class_path` and `init_args`) whose save_dir is the run folder."""
    if not hasattr(item, "get") or item.get("class_path") is None or item.get("init_args") is None:
        return False
    return item.get("init_args").get("save_dir") == RUN_FOLDER


def hold_back(logger: Any) -> tuple[Any, list[dict]]:
    """(the trainer's `logger` value to instantiate now, the logger configs to build in the run folder)."""
    items = logger if isinstance(logger, list) else [logger]
    held = [_as_dict(item) for item in items if _wants_run_folder(item)]
    if not held:
        return logger, []
    kept = [item for item in items if not _wants_run_folder(item)]
    return (kept or False) if isinstance(logger, list) else False, held


def build(held: list[dict], run: Path) -> list:
    """The held-back loggers, writing under `run`."""
    loggers = []
    for config in held:
        init_args = {**(config.get("init_args") or {}), "save_dir": str(run)}
        try:
            loggers.append(instantiate_class((), {"class_path": config["class_path"], "init_args": init_args}))
        except ModuleNotFoundError as err:  # TensorBoardLogger without tensorboard
            raise MissingPackageError(
                f"The logger {config['class_path'].rsplit('.', 1)[-1]} needs a package that is not installed ({err}): "
                "pip install tensorboard (or dawe-merge[tensorboard]), or drop the logger overlay."
            ) from err
    return loggers


def with_built(configured: Any, built: list) -> Any:
    """The trainer's `logger` argument: what was instantiated from the config plus the loggers built in the run folder."""
    if not built:
        return configured
    if configured is None or isinstance(configured, bool):
        return built
    return [*(configured if isinstance(configured, list) else [configured]), *built]


def pin_checkpoints(callbacks: list, run: Path) -> None:
    """Checkpoint callbacks that name no folder write to <run>/checkpoints, with or without a logger."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(run / "checkpoints")
