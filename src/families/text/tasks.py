"""One text classification task: where its data comes from (a shipped corpus or a hub dataset)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets

from src.families.text.corpora import SHIPPED_CORPORA, load_shipped_corpus
from src.paths import hub_offline
from src.taskpool.tasks import DatasetLoadError, Task, TaskInfo


@dataclass
class TextTask(Task):
    """A named task. Shipped corpora need only `name` (or `corpus`); hub datasets need `hub_path`."""

    corpus: str | None = None  # shipped corpus (default: `name`); one of newsgroups, reuters_r8, rotten_tomatoes, election_tweets
    hub_path: str | None = None  # `datasets.load_dataset` path, or a `save_to_disk` folder (replaces `corpus`)
    hub_config: str | None = None  # its configuration name, if any
    train_split: str = "train"  # hub split used to fine-tune the expert
    test_split: str = "test"  # hub split used for adaptation and evaluation
    text_column: str = "text"  # hub column holding the input text
    label_column: str = "label"  # hub column holding the integer class
    class_descriptions: list[str] | None = None  # one phrase per class for the zero-shot head (default: corpus's own or class names)


def _read_splits(task: TextTask) -> dict[str, datasets.Dataset]:
    """A `save_to_disk` folder, or a hub dataset through `datasets.load_dataset`."""
    if Path(task.hub_path).is_dir():
        try:
            saved = datasets.load_from_disk(task.hub_path)
        except Exception as err:
            raise DatasetLoadError(f"Task '{task.name}': '{task.hub_path}' is not a dataset saved with save_to_disk: {err}") from err
        missing = [s for s in (task.train_split, task.test_split) if s not in saved]
        if missing:
            raise DatasetLoadError(f"Task '{task.name}': splits {missing} not in '{task.hub_path}' (has {list(saved)}).")
        return {"train": saved[task.train_split], "test": saved[task.test_split]}
    if hub_offline():
        raise DatasetLoadError(
            f"Task '{task.name}' reads hub dataset '{task.hub_path}', but the hub is offline (HF_HUB_OFFLINE=1). "
            "Use a shipped corpus, or save the dataset with `save_to_disk` and pass that folder as hub_path."
        )
    try:
        return {
            "train": datasets.load_dataset(task.hub_path, task.hub_config, split=task.train_split),
            "test": datasets.load_dataset(task.hub_path, task.hub_config, split=task.test_split),
        }
    except Exception as err:  # datasets raises many types; all mean "cannot read this task"
        raise DatasetLoadError(f"Task '{task.name}': cannot load hub dataset '{task.hub_path}': {err}") from err


def _from_hub(task: TextTask) -> tuple[datasets.DatasetDict, list[str]]:
    splits = _read_splits(task)
    for split, ds in splits.items():
        for column in (task.text_column, task.label_column):
            if column not in ds.column_names:
                raise DatasetLoadError(
                    f"Task '{task.name}': column '{column}' not in the {split} split (columns: {ds.column_names})."
                )
    renamed = datasets.DatasetDict(
        {
            s: ds.select_columns([task.text_column, task.label_column]).rename_columns(
                {task.text_column: "text", task.label_column: "label"}
            )
            for s, ds in splits.items()
        }
    )
    feature = renamed["train"].features["label"]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    if names is None and task.class_descriptions is None:
        raise DatasetLoadError(f"Task '{task.name}': labels are not a ClassLabel; give class_descriptions.")
    return renamed, names or []


def load_text_task(task: TextTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
    """Uncapped train/test splits (columns text, label) and one description per class."""
    if task.hub_path is not None:
        splits, descriptions = _from_hub(task)
    else:
        corpus = task.corpus or task.name
        if corpus not in SHIPPED_CORPORA:
            raise DatasetLoadError(
                f"Task '{task.name}': unknown corpus '{corpus}'. Shipped corpora: {', '.join(SHIPPED_CORPORA)}; "
                "for a hub dataset set hub_path (and text_column, label_column)."
            )
        splits, descriptions = load_shipped_corpus(corpus)
    info = TaskInfo(task.name, tuple(task.class_descriptions or descriptions))
    return {"train": splits["train"], "test": splits["test"]}, info
