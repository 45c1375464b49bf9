"""The text-to-text TaskPool: each example becomes a prompt (a template filled with its columns); classes are label
words, or a regression task's answer is its label written as a number (STS-B)."""
from __future__ import annotations

from dataclasses import dataclass, field

import datasets

from dawe_merge.errors import ConfigError
from dawe_merge.families.text.corpora import SHIPPED_CORPORA, load_shipped_corpus
from dawe_merge.taskpool.base import TaskPool
from dawe_merge.taskpool.sources import read_splits
from dawe_merge.taskpool.tasks import DatasetLoadError, Task, TaskInfo


@dataclass
class PromptTask(Task):
    """A task asked as a prompt: classification answers one of `label_words` (in label order); a regression task
    (`target_template` set) answers its label as a number and is scored by Spearman's rho."""

    label_words: list[str] = field(default_factory=list)  # the answer for each class, in label order
    target_template: str | None = None  # regression: the answer is the label formatted with it (STS-B: "{:.1f}"); no label_words
    template: str = "{text}"  # the prompt: Python format string over the example's columns
    corpus: str | None = None  # a shipped corpus (text.corpora.SHIPPED_CORPORA: newsgroups, reuters_r8, …) instead of hub_path
    hub_path: str | None = None  # `datasets.load_dataset` path (e.g. glue) or a `save_to_disk` folder
    hub_config: str | None = None  # its configuration (e.g. cola)
    train_split: str = "train"  # split used to fine-tune the expert
    test_split: str = "validation"  # split used for adaptation and evaluation (GLUE: validation; MNLI: validation_matched)
    label_column: str = "label"  # column holding the integer class


def _read(task: PromptTask) -> dict[str, datasets.Dataset]:
    if task.hub_path is None:
        corpus = task.corpus or task.name
        if corpus not in SHIPPED_CORPORA:
            raise DatasetLoadError(f"Task '{task.name}': set hub_path, or corpus to one of {', '.join(SHIPPED_CORPORA)}.")
        splits, _ = load_shipped_corpus(corpus)
        return {"train": splits["train"], "test": splits["test"]}
    return read_splits(task.name, task.hub_path, task.hub_config, task.train_split, task.test_split)


def _check_answers(task: PromptTask) -> None:
    if bool(task.label_words) == (task.target_template is not None):
        raise ConfigError(
            f"Task '{task.name}': give label_words (classification, one answer per class in label order) or "
            "target_template (regression, e.g. \"{:.1f}\"), exactly one of them."
        )


def regression_target(task: PromptTask, label: float) -> float:
    """The label as the reference scored it: written with `target_template`, then read back (STS-B: one decimal)."""
    text = task.target_template.format(label)
    try:
        return float(text)
    except ValueError as err:
        raise ConfigError(f"Task '{task.name}': target_template {task.target_template!r} writes {text!r}, not a number.") from err


def load_prompt_task(task: PromptTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
    """Splits with `text` (the filled template) and `label`; the label words are the task's classes.

    A regression task's labels are floats, rounded as its target template writes them.
    """
    _check_answers(task)
    splits = _read(task)

    def prompt(row: dict) -> dict:
        try:
            label = row[task.label_column]
            if task.target_template is not None:
                label = regression_target(task, label)
            return {"text": task.template.format(**row), "label": label}
        except KeyError as err:
            raise DatasetLoadError(f"Task '{task.name}': template field or label column {err} is not a column ({sorted(row)}).") from err

    # in memory: a `save_to_disk` folder is the user's, never a place for datasets' cache files
    out = {s: ds.map(prompt, remove_columns=ds.column_names, keep_in_memory=True) for s, ds in splits.items()}
    if task.target_template is not None:
        return out, TaskInfo(task.name, (), metric="spearman")
    return out, TaskInfo(task.name, tuple(task.label_words))


class Seq2SeqTaskPool(TaskPool):
    """Prompted classification tasks; batches carry `text` (the prompts), `label` when labelled, `index`.

    Args:
        tasks: the tasks, in the order reports and coefficients use.
    """

    def __init__(self, tasks: list[PromptTask], **kwargs) -> None:
        super().__init__(tasks, **kwargs)

    def load_task(self, task: PromptTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
        return load_prompt_task(task)
