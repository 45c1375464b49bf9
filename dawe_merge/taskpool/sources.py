"""Reading a task's train and test splits from a `save_to_disk` folder or a hub dataset (the hub, or a filled cache)."""
from __future__ import annotations

from pathlib import Path

import datasets
from huggingface_hub import DatasetCard

from dawe_merge.paths import ModelNotFoundError, hub_snapshot
from dawe_merge.taskpool.tasks import DatasetLoadError


def read_splits(task: str, source: str, config: str | None, train_split: str, test_split: str) -> dict[str, datasets.Dataset]:
    """{"train", "test"} from `source`: a folder written by `DatasetDict.save_to_disk`, else a `datasets` hub path."""
    if Path(source).is_dir():
        try:
            saved = datasets.load_from_disk(source)
        except Exception as err:  # datasets raises many types; all mean "not a saved dataset"
            raise DatasetLoadError(f"Task '{task}': '{source}' is not a dataset saved with save_to_disk: {err}") from err
        missing = [s for s in (train_split, test_split) if s not in saved]
        if missing:
            raise DatasetLoadError(f"Task '{task}': splits {missing} not in '{source}' (has {list(saved)}).")
        return {"train": saved[train_split], "test": saved[test_split]}
    folder = hub_dataset_folder(task, source, config)
    try:
        return {"train": datasets.load_dataset(str(folder), config, split=train_split), "test": datasets.load_dataset(str(folder), config, split=test_split)}
    except Exception as err:  # datasets raises many types; all mean "cannot read this task"
        raise DatasetLoadError(f"Task '{task}': cannot load hub dataset '{source}' (config {config}) from {folder}: {err}") from err


def hub_dataset_folder(task: str, source: str, config: str | None) -> Path:
    """The hub dataset's files as a local snapshot: downloaded where the hub answers, else from the Hugging Face cache.

    Reading the snapshot folder (rather than handing `datasets` the id) is what lets a filled cache answer
    offline and with the network absent; only the files of `config` are fetched when the card declares configs.
    """
    try:
        card = hub_snapshot(source, "dataset", ["README.md"]) / "README.md"
        patterns = None
        if config is not None and card.is_file():
            declared = {c.get("config_name"): c for c in DatasetCard.load(card).data.to_dict().get("configs") or []}
            if config in declared:
                patterns = ["README.md", *_data_file_patterns(declared[config].get("data_files"))]
        return hub_snapshot(source, "dataset", patterns)
    except ModelNotFoundError as err:
        raise DatasetLoadError(f"Task '{task}': {err}") from err


def _data_file_patterns(data_files) -> list[str]:
    """The path patterns of a card's `data_files` entry (a pattern, a list, or split → pattern(s) mappings)."""
    if data_files is None:
        return ["*"]
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return _data_file_patterns(data_files.get("path"))
    return [p for entry in data_files for p in _data_file_patterns(entry)]


def check_columns(task: str, splits: dict[str, datasets.Dataset], columns: list[str]) -> None:
    for split, ds in splits.items():
        for column in columns:
            if column not in ds.column_names:
                raise DatasetLoadError(f"Task '{task}': column '{column}' not in the {split} split (columns: {ds.column_names}).")
