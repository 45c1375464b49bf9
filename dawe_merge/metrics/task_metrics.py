"""How a task's test outputs become its report entry: class logits, chosen answers, or numbers.

A head decides what it outputs, so it also names the metric that reads it (`head.task_metric()`);
a head without one outputs (B, C) class logits and gets `LogitsAccuracy`. Every metric keeps
torchmetrics states, so the shards of several processes are summed inside `compute`, and every
metric reports the contract's `{"accuracy", "loss"}`. For a regression task "accuracy" holds its
score, Spearman's rho (the paper averages it with the other tasks' accuracies), repeated under
"spearman" so a reader of the report sees which it is.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import SpearmanCorrCoef

from dawe_merge.taskpool.tasks import TaskInfo


@dataclass
class ClassAnswers:
    """Classes chosen by a model that answers in its own words (a decoder generating text).

    `predicted` is each example's class, or -1 when its answer names no class (always wrong);
    `logits` (B, C) are class scores for the loss, so losses stay comparable to logit heads'.
    """

    predicted: torch.Tensor
    logits: torch.Tensor


class TaskMetric(nn.Module):
    """One task's evaluation state: `update` per batch, `compute` once, `reset` before the next run."""

    def update(self, outputs, labels: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def reset(self) -> None:
        for child in self.children():
            child.reset()


class LogitsAccuracy(TaskMetric):
    """Accuracy of the argmax of (B, C) class logits; loss is their cross-entropy."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.loss = MeanMetric()

    def update(self, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.accuracy.update(outputs, labels)
        self.loss.update(nn.functional.cross_entropy(outputs, labels, reduction="none"))

    def compute(self) -> dict[str, float]:
        return {"accuracy": float(self.accuracy.compute()), "loss": float(self.loss.compute())}


class AnswerAccuracy(TaskMetric):
    """Share of answers that name the right class (no class counts as wrong); loss from the class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.accuracy = MeanMetric()
        self.loss = MeanMetric()

    def update(self, outputs: ClassAnswers, labels: torch.Tensor) -> None:
        self.accuracy.update((outputs.predicted == labels).float())
        self.loss.update(nn.functional.cross_entropy(outputs.logits, labels, reduction="none"))

    def compute(self) -> dict[str, float]:
        return {"accuracy": float(self.accuracy.compute()), "loss": float(self.loss.compute())}


class SpearmanScore(TaskMetric):
    """Spearman's rho between (B,) predicted numbers and the labels; loss is their squared error.

    torchmetrics ranks ties by their average rank, as scipy's `spearmanr` (the reference's) does, and
    gives 0 where a side is constant (scipy: NaN), which keeps the report finite. A NaN prediction is an
    answer that wrote no number: scored as 0.0 (the reference's rule) and counted, so that a rho of 0
    never passes silently: the report holds the unparsable share and `warnings` says what happened.
    """

    def __init__(self) -> None:
        super().__init__()
        with warnings.catch_warnings():  # it keeps every prediction: a test split's worth of floats is small
            warnings.filterwarnings("ignore", message=".*will save all targets and predictions")
            self.rho = SpearmanCorrCoef()
        self.loss = MeanMetric()
        self.unparsable = MeanMetric()
        self.warnings: list[str] = []

    def update(self, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        missing = torch.isnan(outputs.float())
        predictions, targets = outputs.float().nan_to_num(0.0), labels.float()
        self.rho.update(predictions, targets)
        self.loss.update((predictions - targets) ** 2)
        self.unparsable.update(missing.float())

    def compute(self) -> dict[str, float]:
        rho = float(self.rho.compute())
        unparsable = float(self.unparsable.compute())
        predictions, targets = (torch.cat(s) if isinstance(s, list) else s for s in (self.rho.preds, self.rho.target))
        self.warnings = []
        if unparsable > 0:
            self.warnings.append(f"{100 * unparsable:.1f}% of the answers wrote no number (scored as 0.0)")
        for side, values in (("predictions", predictions), ("labels", targets)):
            if values.numel() and bool((values == values.flatten()[0]).all()):
                self.warnings.append(f"all {side} are equal ({float(values.flatten()[0]):g}): Spearman's rho is undefined and reported as 0")
        return {"accuracy": rho, "loss": float(self.loss.compute()), "spearman": rho, "unparsable": unparsable}


def task_metric(head: nn.Module, info: TaskInfo) -> TaskMetric:
    """The metric reading `head`'s outputs: the head's own (`task_metric()`), else accuracy of class logits."""
    build = getattr(head, "task_metric", None)
    return build() if build is not None else LogitsAccuracy(info.num_classes)
