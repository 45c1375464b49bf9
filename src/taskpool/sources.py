"""Reading a task's train and test splits from a `save_to_disk` folder or, where the hub is reachable, by name."""
from __future__ import annotations

from pathlib import Path

import datasets

from src.paths import hub_offline
from src.taskpool.tasks import DatasetLoadError


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
    if hub_offline():
        raise DatasetLoadError(
            f"Task '{task}' reads hub dataset '{source}', but the hub is offline (HF_HUB_OFFLINE=1). "
            "Use data that ships offline, or save the dataset with `save_to_disk` where the hub is reachable and pass that folder."
        )
    try:
        return {"train": datasets.load_dataset(source, config, split=train_split), "test": datasets.load_dataset(source, config, split=test_split)}
    except Exception as err:  # datasets raises many types; all mean "cannot read this task"
        raise DatasetLoadError(f"Task '{task}': cannot load hub dataset '{source}': {err}") from err


def check_columns(task: str, splits: dict[str, datasets.Dataset], columns: list[str]) -> None:
    for split, ds in splits.items():
        for column in columns:
            if column not in ds.column_names:
                raise DatasetLoadError(f"Task '{task}': column '{column}' not in the {split} split (columns: {ds.column_names}).")
