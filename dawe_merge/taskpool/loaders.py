"""Batches and samplers shared by every family's TaskPool: generic collation and unpadded DDP shards."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


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


class UnpaddedDistributedSampler(Sampler[int]):
    """Rank r takes examples r, r + world, r + 2·world, ...: disjoint, complete, no padding."""

    def __init__(self, size: int, world_size: int, rank: int) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
