"""TaskPool for text tasks: one test loader per task, in the configured order.

What `fit` trains on is declared by the LightningModule, not by the data config:
a module with a `finetune_task` attribute set gets that task's labelled training split
(expert fine-tuning); any other module gets the unlabelled test inputs of every task, one batch
per task per step (test-time adaptation). Labels are removed from adaptation batches here, so they
cannot reach an adaptation loss.
"""
from __future__ import annotations

import os

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import RandomSampler

from src.errors import ConfigError
from src.taskpool.text_tasks import TextTask, load_task


def collate_labelled(rows: list[dict]) -> dict:
    return {
        "text": [r["text"] for r in rows],
        "label": torch.tensor([r["label"] for r in rows]),
        "index": torch.tensor([r["index"] for r in rows]),
    }


def collate_unlabelled(rows: list[dict]) -> dict:
    return {"text": [r["text"] for r in rows], "index": torch.tensor([r["index"] for r in rows])}


class UnpaddedDistributedSampler(Sampler[int]):
    """Rank r takes examples r, r + world, r + 2·world, ...: disjoint, complete, no padding."""

    def __init__(self, size: int, world_size: int, rank: int) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class TextTaskPool(L.LightningDataModule):
    """Per-task text datasets for expert fine-tuning, test-time adaptation and evaluation.

    Args:
        tasks: the tasks, in the order reports and coefficients use.
        benchmark: name of the results folder (`results/<benchmark>/<method>/`).
        batch_size: batch size for expert fine-tuning and evaluation.
        adapt_batch_size: batch size per task for test-time adaptation (reference: 16).
        val_size: training examples held out to validate an expert.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        tasks: list[TextTask],
        benchmark: str = "text",
        batch_size: int = 32,
        adapt_batch_size: int = 16,
        val_size: int = 200,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        names = [t.name for t in tasks]
        if not names:
            raise ConfigError("The TaskPool needs at least one task.")
        if len(set(names)) != len(names):
            raise ConfigError(f"Task names must be unique, got {names}.")
        self.tasks = tasks
        self.benchmark = benchmark
        self.batch_size = batch_size
        self.adapt_batch_size = adapt_batch_size
        self.val_size = val_size
        self.num_workers = num_workers
        self.shuffle_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))  # same shuffles on every rank
        self._splits: dict = {}
        self.class_descriptions: dict[str, list[str]] = {}

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def num_classes(self) -> dict[str, int]:
        return {t: len(d) for t, d in self.class_descriptions.items()}

    def prepare_data(self) -> None:
        """Loading is local and cheap; `setup` does it on every rank."""

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        for task in self.tasks:
            splits, descriptions = load_task(task)
            held_out = min(self.val_size, len(splits["train"]) // 5)
            self._splits[task.name] = {
                "train": splits["train"].select(range(held_out, len(splits["train"]))),
                "val": splits["train"].select(range(held_out)),
                "test": splits["test"],
            }
            self.class_descriptions[task.name] = descriptions

    def split(self, task: str, split: str):
        if task not in self._splits:
            raise KeyError(f"Unknown task '{task}'. Tasks in this TaskPool: {', '.join(self.task_names)}.")
        return self._splits[task][split]

    def _loader(
        self, dataset, batch_size: int, shuffle: bool, labelled: bool, evaluation: bool = False, stream: int = 0
    ) -> DataLoader:
        """Evaluation loaders are plain; training loaders are resumable mid-epoch.

        A training loader is a `StatefulDataLoader` whose shuffles come from its own generator, seeded
        per loader: Lightning stores its position and generator state in every checkpoint, so a run
        resumed with `fit --ckpt_path` sees exactly the batches the uninterrupted run would have seen,
        and iterating never draws from the global RNG (which dropout masks depend on). `stream` gives
        each task's loader its own shuffle seed.
        """
        sampler = self._distributed_sampler(dataset, shuffle, evaluation)
        if sampler is None and shuffle:
            # its own generator: the loader's below also draws a worker seed at every epoch, which
            # would otherwise shift the shuffle stream and break exact resumption
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.shuffle_seed + 7919 * stream))
        common = dict(
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_labelled if labelled else collate_unlabelled,
            persistent_workers=self.num_workers > 0,
        )
        if evaluation:
            return DataLoader(dataset, **common)
        return StatefulDataLoader(dataset, generator=torch.Generator().manual_seed(self.shuffle_seed), **common)

    def _distributed_sampler(self, dataset, shuffle: bool, evaluation: bool):
        """Samplers for several processes, so that evaluation sees every example exactly once.

        Lightning's own DistributedSampler pads each rank to equal length by repeating examples, which
        changes accuracy whenever a test set does not divide by the number of processes; so the
        configs set `use_distributed_sampler: false` and the TaskPool shards itself.
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return None
        if getattr(trainer, "_accelerator_connector", None) is not None and trainer._accelerator_connector.use_distributed_sampler:
            raise ConfigError(
                "Running on several processes needs `trainer.use_distributed_sampler: false` (the TaskPool shards the "
                "data itself so no test example is counted twice). Stack configs/trainer/ddp.yaml."
            )
        if evaluation:
            return UnpaddedDistributedSampler(len(dataset), trainer.world_size, trainer.global_rank)
        return DistributedSampler(dataset, trainer.world_size, trainer.global_rank, shuffle=shuffle, seed=self.shuffle_seed)

    def _finetune_task(self) -> str | None:
        module = self.trainer.lightning_module if self.trainer is not None else None
        return getattr(module, "finetune_task", None)

    def train_dataloader(self):
        task = self._finetune_task()
        if task is not None:
            return self._loader(self.split(task, "train"), self.batch_size, shuffle=True, labelled=True)
        loaders = {
            t: self._loader(self.split(t, "test"), self.adapt_batch_size, shuffle=True, labelled=False, stream=i + 1)
            for i, t in enumerate(self.task_names)
        }
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self):
        task = self._finetune_task()
        if task is not None:
            return self._loader(self.split(task, "val"), self.batch_size, shuffle=False, labelled=True, evaluation=True)
        return self.test_dataloader()  # adaptation is monitored on the test sets (labels only for accuracy)

    def feature_loaders(self, batch_size: int = 64) -> dict[str, DataLoader]:
        """Every test input of every task, unsharded, in index order and without labels.

        DAWE computes its frozen features from these once, before adapting, so each example's feature
        does not depend on which batch first met it (bit-identical resumes, same features on every rank).
        """
        return {t: DataLoader(self.split(t, "test"), batch_size=batch_size, collate_fn=collate_unlabelled) for t in self.task_names}

    def evaluate(self, model: L.LightningModule, **trainer_kwargs) -> dict:
        """`trainer.test` of `model` on every task, outside the CLI.

        Returns FusionBench's report contract: {task: {accuracy, loss}, ..., "average": {accuracy, loss}}.
        """
        defaults = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False}
        trainer = L.Trainer(**{**defaults, **trainer_kwargs})
        trainer.test(model, datamodule=self, verbose=False)
        return model.test_report

    def test_dataloader(self) -> list[DataLoader]:
        return [
            self._loader(self.split(t, "test"), self.batch_size, shuffle=False, labelled=True, evaluation=True)
            for t in self.task_names
        ]
