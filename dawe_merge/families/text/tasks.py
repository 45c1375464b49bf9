"""One text classification task: where its data comes from (a shipped corpus or a hub dataset)."""
from __future__ import annotations

from dataclasses import dataclass

import datasets

from dawe_merge.families.text.corpora import SHIPPED_CORPORA, load_shipped_corpus
from dawe_merge.taskpool.sources import check_columns, read_splits
from dawe_merge.taskpool.tasks import DatasetLoadError, Task, TaskInfo


@dataclass
class TextTask(Task):
    """A named task. Shipped corpora need only `name` (or `corpus`); hub datasets need `hub_path`."""

    corpus: str | None = None  # shipped corpus (default: `name`); one of corpora.SHIPPED_CORPORA (newsgroups, reuters_r8, …)
    hub_path: str | None = None  # `datasets.load_dataset` path, or a `save_to_disk` folder (replaces `corpus`)
    hub_config: str | None = None  # its configuration name, if any
    train_split: str = "train"  # hub split used to fine-tune the expert
    test_split: str = "test"  # hub split used for adaptation and evaluation
    text_column: str = "text"  # hub column holding the input text
    text_pair_column: str | None = None  # hub column holding a sentence-pair task's second text (MRPC, RTE, QNLI, ...): batches carry it as `text_pair`
    label_column: str = "label"  # hub column holding the integer class
    class_descriptions: list[str] | None = None  # one phrase per class for the zero-shot head (default: corpus's own or class names)


def _from_hub(task: TextTask) -> tuple[datasets.DatasetDict, list[str]]:
    splits = read_splits(task.name, task.hub_path, task.hub_config, task.train_split, task.test_split)
    columns = {task.text_column: "text", task.label_column: "label"}
    if task.text_pair_column is not None:
        columns[task.text_pair_column] = "text_pair"
    check_columns(task.name, splits, list(columns))
    renamed = datasets.DatasetDict({s: ds.select_columns(list(columns)).rename_columns(columns) for s, ds in splits.items()})
    feature = renamed["train"].features["label"]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    if names is None and task.class_descriptions is None:
        raise DatasetLoadError(f"Task '{task.name}': labels are not a ClassLabel; give class_descriptions.")
    return renamed, names or []


def shipped_corpus(task: TextTask) -> str | None:
    """The shipped corpus a task reads (its `corpus`, else its name), or None for a hub dataset."""
    return None if task.hub_path is not None else task.corpus or task.name


def load_text_task(task: TextTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
    """Uncapped train/test splits (columns text, label) and one description per class."""
    corpus = shipped_corpus(task)
    if corpus is None:
        splits, descriptions = _from_hub(task)
    else:
        if corpus not in SHIPPED_CORPORA:
            raise DatasetLoadError(
                f"Task '{task.name}': unknown corpus '{corpus}'. Shipped corpora: {', '.join(SHIPPED_CORPORA)}; "
                "for a hub dataset set hub_path (and text_column, label_column)."
            )
        splits, descriptions = load_shipped_corpus(corpus)
    info = TaskInfo(task.name, tuple(task.class_descriptions or descriptions))
    return {"train": splits["train"], "test": splits["test"]}, info
