"""Batches shared by every family's TaskPool: generic collation (DDP shards: Lightning's UnrepeatedDistributedSampler)."""
from __future__ import annotations

import torch


def collate_rows(rows: list[dict]) -> dict:
    """Rows of a `datasets.Dataset` → one batch: strings and other objects stay lists, numbers become tensors.

    Keys stay the dataset's columns, so a batch carries the family's inputs under its own names, plus
    `label` (labelled loaders only) and `index` (the example's position in its task's split).
    """
    batch: dict = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first, (int, float, bool)) or (isinstance(first, list) and first and isinstance(first[0], (int, float))):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch
