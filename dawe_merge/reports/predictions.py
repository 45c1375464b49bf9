"""`predict`'s rows: what a head's outputs say about each input, in the words of its task.

Heads output class logits, chosen answers (a decoder's own words) or numbers (regression); each
becomes one JSON-ready row per input, so predictions of every family read the same way.
"""
from __future__ import annotations

import math

import torch

from dawe_merge.metrics.task_metrics import ClassAnswers
from dawe_merge.taskpool.tasks import TaskInfo


def prediction_rows(outputs, info: TaskInfo, indices, extras: list[dict] | None = None) -> list[dict]:
    """One row per input: task, index, predicted class (its name) and class probabilities, or the predicted number."""
    indices = [int(i) for i in indices]
    if isinstance(outputs, ClassAnswers):
        predicted, probabilities = outputs.predicted, outputs.logits.float().softmax(-1)
    elif outputs.dim() == 1:  # a regression head's numbers
        predicted, probabilities = outputs.float(), None
    else:
        probabilities = outputs.float().softmax(-1)
        predicted = probabilities.argmax(-1)
    rows = []
    for k, index in enumerate(indices):
        row: dict = {"task": info.name, "index": index}
        if probabilities is None:
            value = float(predicted[k])
            row["prediction"] = value if math.isfinite(value) else None  # an answer that wrote no number
        else:
            choice = int(predicted[k])
            row["prediction"] = choice
            row["class"] = info.classes[choice] if 0 <= choice < len(info.classes) else None  # -1: an answer naming no class
            row["probabilities"] = [round(float(p), 6) for p in probabilities[k]]
        if extras is not None:
            row.update(extras[k])
        rows.append(row)
    return rows


def in_input_order(rows: list[dict], inputs: dict[str, list[dict]], column: str) -> list[dict]:
    """A predict file's rows in the file's order, each carrying the input it answers (its text, or its image's path)."""
    sources = {given["index"]: given for task_rows in inputs.values() for given in task_rows}
    ordered = []
    for row in sorted(rows, key=lambda r: r["index"]):
        given = sources[row["index"]]
        named = {"task": row["task"], "index": row["index"], column: given["source"]}
        if "text_pair" in given:
            named["text_pair"] = given["text_pair"]
        ordered.append({**named, **row})
    return ordered


def gather_rows(rows: list[dict], world_size: int) -> list[dict]:
    """Every rank's rows on every rank (each saw a shard), in task then index order."""
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        shards: list = [None] * world_size
        torch.distributed.all_gather_object(shards, rows)
        rows = [row for shard in shards for row in shard]
    order = {}
    for row in rows:
        order.setdefault(row["task"], len(order))
    return sorted(rows, key=lambda r: (order[r["task"]], r["index"]))
