"""The TaskPool: a LightningDataModule with everything about tasks that does not depend on the modality.

A family subclasses it and implements one method, `load_task(task)` → raw train/test splits (a `label`
column plus the family's input columns) and the task's `TaskInfo`; `collate` may be overridden when
rows need more than `collate_rows` (images, say). Everything else lives here once: task order, seeded
caps, the expert validation hold-out, unlabelled adaptation loaders, resumable training loaders,
unpadded DDP sharding, DAWE's feature loaders and `evaluate`.

Which training data `fit` gets is the method's to say, in its `setup` (`serve`): the task an expert fine-tunes on,
or None for test-time adaptation (one unlabelled batch per task). The data module never reads the model.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import datasets
import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler  # rank r: examples r, r + world, ...; no padding
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import RandomSampler

from dawe_merge.errors import ConfigError, check_number
from dawe_merge.taskpool.loaders import collate_rows
from dawe_merge.taskpool.tasks import Task, TaskInfo, finalize_splits
from dawe_merge.taskpool.user_inputs import read_user_inputs

datasets.disable_progress_bars()  # per-split bars would drown the training progress bar


class TaskPool(L.LightningDataModule):
    """Per-task datasets for expert fine-tuning, test-time adaptation and evaluation.

    Args:
        tasks: the tasks, in the order reports and coefficients use.
        benchmark: name of the results folder (`results/<benchmark>/<method>/`).
        batch_size: batch size for expert fine-tuning and evaluation.
        adapt_batch_size: batch size per task for test-time adaptation (reference: 16).
        val_size: training examples held out per task: an expert's validation set, what `validate` evaluates, and
            what adaptation is monitored (and its state selected) on.
        monitor_split: what an adaptive method's `fit` monitors: val (held out from the training data: settings and
            states chosen on it never read a test label) or test (the test labels, for diagnostic curves only).
        num_workers: DataLoader workers.
        predict_split: the split `predict` reads when no predict_file is given: test, val (held out from train) or train.
        predict_file: `predict` reads these inputs instead: a jsonl with one {"text": ...} (or {"image": path}) per line
            and optionally "task", a .txt with one text per line, or a folder of images.
        predict_task: the task whose head reads predict_file lines that name none.
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        benchmark: str = "benchmark",
        batch_size: int = 32,
        adapt_batch_size: int = 16,
        val_size: int = 200,
        monitor_split: Literal["val", "test"] = "val",
        num_workers: int = 0,
        predict_split: Literal["test", "val", "train"] = "test",
        predict_file: str | None = None,
        predict_task: str | None = None,
    ) -> None:
        super().__init__()
        names = [t.name for t in tasks]
        if not names:
            raise ConfigError("The TaskPool needs at least one task.")
        if len(set(names)) != len(names):
            raise ConfigError(f"Task names must be unique, got {names}.")
        check_number("data.init_args.batch_size", batch_size, 1)
        check_number("data.init_args.adapt_batch_size", adapt_batch_size, 1)
        check_number("data.init_args.val_size", val_size, 0)
        check_number("data.init_args.num_workers", num_workers, 0)
        self.tasks = list(tasks)
        self.benchmark = benchmark
        self.batch_size = batch_size
        self.adapt_batch_size = adapt_batch_size
        self.val_size = val_size
        if monitor_split not in ("val", "test"):
            raise ConfigError(f"data.init_args.monitor_split must be val or test, got {monitor_split!r}.")
        self.monitor_split = monitor_split
        self.num_workers = num_workers
        if predict_split not in ("test", "val", "train"):
            raise ConfigError(f"data.init_args.predict_split must be test, val or train, got {predict_split!r}.")
        if predict_task is not None and predict_task not in names:
            raise ConfigError(f"data.init_args.predict_task '{predict_task}' is not a task of this TaskPool ({', '.join(names)}).")
        self.predict_split, self.predict_file = predict_split, predict_file
        self._user_inputs: dict[str, list[dict]] | None = None  # `user_inputs`: the predict file, read once
        self.predict_task = predict_task or (names[0] if len(names) == 1 else None)
        self.predict_task_names: list[str] = []
        self.shuffle_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))  # same shuffles on every rank
        self._splits: dict[str, dict[str, datasets.Dataset]] = {}
        self._infos: dict[str, TaskInfo] = {}
        self.training_task: str | None = None  # `serve`: the expert's task, None: unlabelled adaptation on every task
        self.input_column = "text"  # `serve`: the column a predict file's inputs are read into

    def serve(self, training_task: str | None, input_column: str) -> None:
        """What the model needs from the data, told by the model's `setup` before any loader is asked for: the task
        `fit` fine-tunes an expert on (None: `fit` adapts on unlabelled batches of every task) and the input column."""
        self.training_task, self.input_column = training_task, input_column

    # ---- what a family implements -----------------------------------------------------------------
    def load_task(self, task: Task) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
        """Uncapped {"train", "test"} splits with a `label` column, and the task's classes."""
        raise NotImplementedError

    def collate(self, rows: list[dict]) -> dict:
        """A labelled batch from dataset rows; unlabelled batches are this without `label`."""
        return collate_rows(rows)

    def held_out_tasks(self) -> list[str]:
        """Tasks no setting may be chosen on (scripts/select_settings.py refuses them): none unless a family keeps some."""
        return []

    # ---- tasks ------------------------------------------------------------------------------------
    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task_info(self, task: str) -> TaskInfo:
        self.setup()
        return self._infos[self._known(task)]

    def prepare_data(self) -> None:
        """Loading is local and cheap; `setup` does it on every rank."""

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        for task in self.tasks:
            raw, info = self.load_task(task)
            splits = finalize_splits(task, raw, info)
            held_out = min(self.val_size, len(splits["train"]) // 5)
            self._splits[task.name] = {
                "train": splits["train"].select(range(held_out, len(splits["train"]))),
                "val": splits["train"].select(range(held_out)),
                "test": splits["test"],
            }
            self._infos[task.name] = info

    def _known(self, task: str) -> str:
        if task not in self.task_names:
            raise KeyError(f"Unknown task '{task}'. Tasks in this TaskPool: {', '.join(self.task_names)}.")
        return task

    def split(self, task: str, split: str) -> datasets.Dataset:
        self.setup()
        return self._splits[self._known(task)][split]

    # ---- loaders ----------------------------------------------------------------------------------
    def _collate(self, labelled: bool):
        return self.collate if labelled else self._collate_unlabelled

    def _collate_unlabelled(self, rows: list[dict]) -> dict:
        """Adaptation and feature batches: the label column never leaves the data module."""
        return self.collate([{k: v for k, v in row.items() if k != "label"} for row in rows])

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
            collate_fn=self._collate(labelled),
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
            if len(dataset) < trainer.world_size:  # Lightning refuses a process an empty loader, deep in its loop
                raise ConfigError(
                    f"An evaluation split of {len(dataset)} example(s) cannot be shared by {trainer.world_size} processes: each "
                    "needs at least one. Run on fewer devices, or give the small task more test/validation examples."
                )
            return UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
        return DistributedSampler(dataset, trainer.world_size, trainer.global_rank, shuffle=shuffle, seed=self.shuffle_seed)

    def train_dataloader(self):
        task = self.training_task
        if task is not None:
            return self._loader(self.split(task, "train"), self.batch_size, shuffle=True, labelled=True)
        loaders = {
            t: self._loader(self.split(t, "test"), self.adapt_batch_size, shuffle=True, labelled=False, stream=i + 1)
            for i, t in enumerate(self.task_names)
        }
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self):
        task = self.training_task
        if task is not None:
            return self._loader(self.split(task, "val"), self.batch_size, shuffle=False, labelled=True, evaluation=True)
        fitting = self.trainer is not None and self.trainer.state.fn == "fit"
        split = self.monitor_split if fitting else "val"  # `validate`: always the held-out training data
        return [self._loader(self.split(t, split), self.batch_size, shuffle=False, labelled=True, evaluation=True) for t in self.task_names]

    def test_dataloader(self) -> list[DataLoader]:
        return [
            self._loader(self.split(t, "test"), self.batch_size, shuffle=False, labelled=True, evaluation=True)
            for t in self.task_names
        ]

    def user_inputs(self, column: str) -> dict[str, list[dict]]:
        """The predict file's inputs by task, read (and checked) once: the CLI reads them before any model loads."""
        if self._user_inputs is None:
            self._user_inputs = read_user_inputs(self.predict_file, column, self.task_names, self.predict_task)
        return self._user_inputs

    def predict_dataloader(self) -> list[DataLoader]:
        """One unlabelled loader per task: its `predict_split`, or the `predict_file` inputs that task's head reads."""
        if self.predict_file is None:
            inputs = {t: self.split(t, self.predict_split) for t in self.task_names}
        else:
            rows_by_task = self.user_inputs(self.input_column).items()
            inputs = {t: [{k: v for k, v in row.items() if k != "source"} for row in rows] for t, rows in rows_by_task}
        self.predict_task_names = list(inputs)
        return [self._loader(data, self.batch_size, shuffle=False, labelled=False, evaluation=True) for data in inputs.values()]

    def feature_loaders(self, batch_size: int = 64, split: str = "test", labelled: bool = False) -> dict[str, DataLoader]:
        """Every input of `split` of every task, unsharded, in index order, without labels unless asked (a training split).

        DAWE computes its frozen features from these once, before adapting, so each example's feature
        does not depend on which batch first met it (bit-identical resumes, same features on every rank).
        """
        if labelled and split == "test":
            raise ConfigError("Test labels are for evaluation only: a loader that adapts or merges reads them from a training split.")
        return {t: DataLoader(self.split(t, split), batch_size=batch_size, collate_fn=self._collate(labelled)) for t in self.task_names}

    def evaluate(self, model: L.LightningModule, results_dir: str | None = None, **trainer_kwargs) -> dict:
        """`trainer.test` of `model` on every task, outside the CLI.

        Returns FusionBench's report contract: {task: {accuracy, loss}, ..., "average": {accuracy, loss}}; under bf16
        autocast a task's entry also holds `close_calls` (inputs decided again in fp32, dawe_merge/metrics/close_calls.py).
        With `results_dir`, the report files and comparison table are written there as `test` writes them.
        """
        from dawe_merge.callbacks.report_writer import ReportWriter

        defaults = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False}
        writers = [] if results_dir is None else [ReportWriter(results_dir, command=f"{type(self).__name__}.evaluate")]
        callbacks = [*(trainer_kwargs.pop("callbacks", None) or []), *writers]
        trainer = L.Trainer(**{**defaults, **trainer_kwargs, "callbacks": callbacks})
        trainer.test(model, datamodule=self, verbose=False)
        return model.test_report


__all__ = ["TaskPool", "Task", "TaskInfo"]
