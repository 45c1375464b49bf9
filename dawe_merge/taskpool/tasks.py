"""What every family's task spec and task description share: a name, seeded caps, and the classes.

A family subclasses `Task` with where its data comes from (a corpus, a hub dataset, columns); the
TaskPool turns each into splits plus a `TaskInfo`, which is all a ModelPool sees when it builds a
head, so heads never reach into the data module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import datasets

from dawe_merge.errors import ConfigError, UserFacingError

Metric = Literal["accuracy", "spearman"]


class DatasetLoadError(UserFacingError, RuntimeError):
    """A task's dataset cannot be loaded or is unusable."""


@dataclass
class Task:
    """A named task with seeded size caps; families add where the data comes from."""

    name: str  # task name: experts, heads and report rows are matched by it
    max_train: int | None = 2000  # cap on training examples (seeded subsample), keeps expert fine-tuning short
    max_test: int | None = 500  # cap on test examples (seeded subsample); keep it even for exact DDP evaluation
    seed: int = 0  # seed of the subsamples, fixed so every run sees the same examples


@dataclass(frozen=True)
class TaskInfo:
    """What a head needs to know of a task: one entry per class, in label order.

    `classes` holds what the family's head reads: a description a text encoder embeds, a class name a
    CLIP template fills, or a label word a decoder scores. `templates` are prompts with one `{}` for
    heads that embed class names (CLIP); empty for the others. `metric` is how the task is scored:
    "accuracy" (classification: integer labels, one class each) or "spearman" (regression: float
    labels, no classes, Spearman's rho of predicted numbers, as GLUE scores STS-B).
    """

    name: str
    classes: tuple[str, ...]
    templates: tuple[str, ...] = ()
    metric: Metric = "accuracy"

    def __post_init__(self) -> None:
        if self.metric not in ("accuracy", "spearman"):
            raise ConfigError(f"Task '{self.name}': metric must be 'accuracy' or 'spearman', got {self.metric!r}.")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_regression(self) -> bool:
        return self.metric == "spearman"


def capped(ds: datasets.Dataset, n: int | None, seed: int) -> datasets.Dataset:
    """Seeded shuffle, then the first `n`: files are often sorted by class, so never take a plain prefix."""
    ds = ds.shuffle(seed=seed)
    return ds if n is None or len(ds) <= n else ds.select(range(n))


def finalize_splits(task: Task, splits: dict[str, datasets.Dataset], info: TaskInfo) -> datasets.DatasetDict:
    """Cap each split, add the `index` column (the key of DAWE's feature cache) and check the labels."""
    out = datasets.DatasetDict()
    for split, cap in (("train", task.max_train), ("test", task.max_test)):
        ds = capped(splits[split], cap, task.seed)
        if len(ds) == 0:
            raise DatasetLoadError(
                f"Task '{task.name}': the {split} split is empty ({len(splits[split])} examples in the source, "
                f"cap max_{split}={cap}). Point the task at data with examples, or raise the cap."
            )
        out[split] = ds.add_column("index", list(range(len(ds))))
    if info.is_regression:
        return out  # float labels: nothing to check against classes
    num_labels = max(max(out["train"]["label"]), max(out["test"]["label"])) + 1
    if info.num_classes < num_labels:
        raise DatasetLoadError(
            f"Task '{task.name}': {info.num_classes} classes (descriptions, names or label words) but labels go up to "
            f"{num_labels - 1}; give one entry per class."
        )
    return out
