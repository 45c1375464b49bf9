"""The base LightningModule: frozen per-task heads and the TaskPool test loop shared by every method.

Subclasses say how a task's inputs are embedded (`embed`); this class owns heads, metrics, the
report and checkpoint trimming, so every method is evaluated the same way. It meets a modality only
through the `ModelPool` (model, inputs, heads) and the `TaskPool` (tasks and their classes).
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import nn

from dawe_merge.errors import ConfigError
from dawe_merge.export.spec import RecordsInit
from dawe_merge.metrics.close_calls import CLOSE_CALL_ULPS, CloseCallCount, margin_in_ulps, select_rows, with_rows
from dawe_merge.metrics.task_metrics import task_metric
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.reports.predictions import prediction_rows
from dawe_merge.taskpool.base import TaskPool
from dawe_merge.taskpool.tasks import TaskInfo


class MergedModelModule(RecordsInit, L.LightningModule):
    """Shared machinery; `method_name` names the results folder unless `name` overrides it."""

    method_name = "model"
    # where the method sits (dawe_merge/methods/registry.py): reference (not a merge: what merges are measured against),
    # static (merged from the weights alone, `test` only), adaptive (`fit` adapts it first); anything else is no merge
    role = "static"
    expert_task: str | None = None  # the task `fit` fine-tunes an expert on; None: fit adapts on every task
    loads_checkpoints = False  # whether `--ckpt_path` means anything (a trainable part to restore)
    # under bf16/fp16 autocast, evaluation decides again in fp32 every input whose top two class logits are
    # within this many spacings of the dtype (dawe_merge/metrics/close_calls.py); a run sets it with CloseCallThreshold
    close_call_ulps: float = CLOSE_CALL_ULPS
    # whether an input's outputs depend on the rest of its batch (a merge per batch): close calls then rerun the batch
    merges_per_batch_at_evaluation = False

    def __init__(self, modelpool: ModelPool, name: str | None = None) -> None:
        """
        Args:
            modelpool: the model family's pool: pretrained model, experts, inputs and heads.
            name: results folder name; defaults to the method's own name.
        """
        super().__init__()
        self.modelpool = modelpool
        self.report_name = name or self.method_name
        self.task_names: list[str] = []
        self.task_infos: dict[str, TaskInfo] = {}
        self.test_report: dict | None = None
        self.validation_report: dict | None = None
        self.recheck_rows: torch.Tensor | None = None  # while close calls run again in fp32: their rows in the batch
        self.strict_loading = False  # checkpoints hold only trainable tensors

    # ---- built once the TaskPool is known ----------------------------------------------------
    @property
    def taskpool(self) -> TaskPool:
        datamodule = self.trainer.datamodule
        if not isinstance(datamodule, TaskPool):
            raise ConfigError(f"The data module must be a TaskPool (dawe_merge.taskpool.TaskPool subclass), got {type(datamodule).__name__}.")
        return datamodule

    def setup(self, stage: str) -> None:
        taskpool = self.taskpool
        taskpool.serve(training_task=self.expert_task, input_column=self.modelpool.input_column)  # before any loader
        if self.task_names:
            return
        taskpool.setup(stage)
        self._build(list(taskpool.task_names), {t: taskpool.task_info(t) for t in taskpool.task_names})

    def _build(self, names: list[str], infos: dict[str, TaskInfo]) -> None:
        """Heads (for the tasks whose classes are known) and the method's model, over the tasks `names` in order."""
        self.task_names, self.task_infos = list(names), dict(infos)
        pretrained = self.modelpool.pretrained_model()
        self.heads = self.build_heads(pretrained, infos)
        # the head names what reads its outputs: class logits, answers in the model's own words, numbers
        self.test_metrics = nn.ModuleDict({t: task_metric(self.heads[t], infos[t]) for t in self.heads})
        self.close_calls = nn.ModuleDict({t: CloseCallCount() for t in self.heads})
        self.build(pretrained)

    def build_heads(self, pretrained: nn.Module, infos: dict[str, TaskInfo]) -> nn.ModuleDict:
        """One frozen head per task, built by the family before the model is merged or trained."""
        return nn.ModuleDict({t: self.modelpool.build_head(info, pretrained).requires_grad_(False) for t, info in infos.items()})

    def build(self, pretrained: nn.Module) -> None:
        """Create the method's model(s) from the pretrained encoder and the pool."""
        raise NotImplementedError

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        """Embeddings of a batch that comes from `task`."""
        raise NotImplementedError

    def task_logits(self, batch: dict, task: str, evaluation: bool = False):
        """The head's outputs for a batch of `task`: class logits while training; at evaluation whatever the
        head gives its metric (the family's `evaluation_inputs` may ask the model for more, e.g. a generated answer)."""
        prepare = self.modelpool.evaluation_inputs if evaluation else self.modelpool.prepare_inputs
        outputs = self.heads[task](self.embed(prepare(batch, self.device), task, batch))
        return self.decide_close_calls_again(outputs, batch, task) if evaluation and self.recheck_rows is None else outputs

    def decide_close_calls_again(self, logits: object, batch: dict, task: str) -> object:
        """Low-precision class logits with the rows whose top two are within `close_call_ulps` computed again in fp32.

        A bf16 tie or near-tie is decided by rounding; fp32 decides those rows as an fp32 run would, and the rest
        keep bf16's speed. Other outputs (fp32 logits, generated answers, numbers) pass unchanged.
        """
        margins = margin_in_ulps(logits)
        if margins is None or not torch.is_autocast_enabled(self.device.type):  # bf16 weights (bf16-true): no fp32 to ask
            return logits
        ulps = self.close_call_ulps
        close = (margins <= ulps) | (~margins.isfinite() if ulps >= 0 else False)  # a NaN or inf margin: ask fp32 too
        rows = close.nonzero().flatten()
        decided = logits.float()
        if rows.numel():
            whole = self.merges_per_batch_at_evaluation  # the rows' own outputs need the whole batch's merge
            self.recheck_rows = torch.arange(len(margins), device=rows.device) if whole else rows
            try:
                with torch.autocast(self.device.type, enabled=False):
                    exact = self.task_logits(batch if whole else select_rows(batch, rows), task, evaluation=True)
                decided = with_rows(logits, rows, exact[rows] if whole else exact)
            finally:
                self.recheck_rows = None
        rechecked = torch.zeros_like(margins, dtype=torch.bool)
        rechecked[rows] = True
        self.close_calls[task].update(margins, rechecked, decided.argmax(1) != logits.float().argmax(1))
        return decided

    # ---- the merged model as a plain module, and on disk ------------------------------------------
    def merge(self, tasks: TaskPool | Sequence[str] | None = None) -> nn.Module:
        """The merged model as a plain module (DAWE: the model that merges per input), built first if no run did."""
        return self.prepare(tasks).merged_module()

    def prepare(self, tasks: TaskPool | Sequence[str] | None = None) -> MergedModelModule:
        """Build heads and model outside a Trainer, once (a `test` or `fit` builds them itself).

        `tasks` fixes the task order (the order of coefficients and task vectors): a TaskPool (its heads are
        built, and exported), task names (no heads), or None for every expert of the pool.
        """
        if not self.task_names:
            if isinstance(tasks, TaskPool):
                self._prepared_with = tasks
                tasks.setup()
                self._build(list(tasks.task_names), {t: tasks.task_info(t) for t in tasks.task_names})
            else:
                self._build(list(tasks) if tasks is not None else self.modelpool.expert_names(), {})
        return self

    def training_data(self) -> TaskPool:
        """The TaskPool whose training splits a merge computed from data reads (RegMean): the run's, or `prepare`'s."""
        if self._trainer is not None and isinstance(self.trainer.datamodule, TaskPool):
            return self.trainer.datamodule
        if getattr(self, "_prepared_with", None) is not None:
            return self._prepared_with
        raise ConfigError(f"'{self.report_name}' computes its merge from the tasks' training data: run it with a TaskPool "
                          "(`test` through the CLI, or `method.merge(taskpool)`), not from task names alone.")  # fmt: skip

    def merged_module(self) -> nn.Module:
        """What `merge` returns once built; methods without one merged model refuse."""
        raise ConfigError(
            f"'{self.report_name}' has no single merged model to export: individual experts are already on disk, and "
            "fine-tuning saves its expert itself. Export a merging method (task_arithmetic, ties, adamerging, dawe, ...)."
        )

    def learned(self) -> dict | None:
        """What the method learned, for its export's card and merge_info.json (None: nothing beyond its parameters)."""
        return None

    def export(
        self, folder: str | Path, task_vector_dtype: str | None = None, command: str | None = None, recipe: str | None = None, overwrite: bool = False
    ) -> Path:
        """Write the merged model to `folder` (see dawe_merge/export/): a `from_pretrained` folder, or a DAWE folder.

        `recipe`: the YAML config that makes it again (the CLI passes the run's); `overwrite`: replace an earlier export there.
        """
        from dawe_merge.export.writer import export_method

        return export_method(self, Path(folder), task_vector_dtype=task_vector_dtype, command=command, recipe=recipe, overwrite=overwrite)

    # ---- TaskPool evaluation ------------------------------------------------------------------
    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        task = self.task_names[dataloader_idx]
        self.test_metrics[task].update(self.task_logits(batch, task, evaluation=True), batch["label"])

    # ---- `validate`: the same evaluation on the validation splits carved from the training data ----------
    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.test_step(batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self.validation_report = self.collect_report()
        self.log("val/avg/acc", self.validation_report["average"]["accuracy"], prog_bar=True)

    # ---- `predict`: class, probabilities (and coefficients) per input, no label needed -------------------------
    def on_predict_epoch_start(self) -> None:
        self._reset_close_calls()

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        """The batch's rows (dawe_merge/reports/predictions.py); the CLI's PredictionsJsonl writes them to a file."""
        task = self.taskpool.predict_task_names[dataloader_idx]
        inputs = {k: v for k, v in batch.items() if k != "index"}  # no cached features: any split or file may come
        outputs = self.task_logits(inputs, task, evaluation=True)
        return prediction_rows(outputs, self.task_infos[task], batch["index"], self.prediction_extras(len(batch["index"])))

    def prediction_extras(self, count: int) -> list[dict] | None:
        """Per-input fields a method adds to its predictions (an adaptive merge: the coefficients)."""
        return None

    def on_predict_epoch_end(self) -> None:
        self._reset_close_calls()  # predict reports no counts: none carried into a later test of this module

    def _reset_close_calls(self) -> None:
        for counter in getattr(self, "close_calls", {}).values():
            counter.reset()

    def collect_report(self) -> dict[str, dict]:
        """Per-task accuracy (a regression task: its score) and loss plus their unweighted average; resets the metrics.

        Under bf16/fp16 autocast a task's entry also counts its close calls (`close_calls`, per margin bucket).

        Every rank calls this: torchmetrics syncs the states across processes inside `compute`.
        """
        report: dict[str, dict[str, float]] = {}
        for task in self.task_names:
            report[task] = self.test_metrics[task].compute()
            if self._trainer is not None and self.trainer.is_global_zero:
                for warning in getattr(self.test_metrics[task], "warnings", []):
                    print(f"warning: task '{task}': {warning}", file=sys.stderr)
            self.test_metrics[task].reset()
            if self._trainer is not None and self.trainer.precision in ("bf16-mixed", "16-mixed"):  # every rank: compute syncs
                with warnings.catch_warnings():  # a rank without batches of this task, or answers with no logits
                    warnings.filterwarnings("ignore", message=".*compute.*before.*update")
                    counts = self.close_calls[task].compute()
                if sum(counts["inputs"]):
                    report[task]["close_calls"] = counts
            self.close_calls[task].reset()
        report["average"] = {
            key: sum(report[t][key] for t in self.task_names) / len(self.task_names) for key in ("accuracy", "loss")
        }
        return report

    def on_test_epoch_end(self) -> None:
        report = self.collect_report()
        for task, values in report.items():
            key = "avg" if task == "average" else task
            self.log(f"test/{key}/acc", values["accuracy"])
            self.log(f"test/{key}/loss", values["loss"])
        self.test_report = report

    # ---- checkpoints hold trainable tensors only, plus what an exact resume needs -------------------
    def saved_state(self) -> dict[str, torch.Tensor]:
        """What checkpoints and exports keep: the trainable parameters (subclasses add what defines them)."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        kept = self.saved_state()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in kept}
        checkpoint["merge_metadata"] = self.checkpoint_metadata()

    def checkpoint_metadata(self) -> dict:
        return {"method": self.method_name, "tasks": list(self.task_names)}
