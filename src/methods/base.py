"""The base LightningModule: frozen per-task heads and the TaskPool test loop shared by every method.

Subclasses say how a task's inputs are embedded (`embed`); this class owns heads, metrics, the
report and checkpoint trimming, so every method is evaluated the same way.
"""
from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.modelpool.text_pool import TextModelPool
from src.models.heads import ZeroShotHead


class MergedModelModule(L.LightningModule):
    """Shared machinery; `method_name` names the results folder unless `name` overrides it."""

    method_name = "model"

    def __init__(self, modelpool: TextModelPool, logit_scale: float = 20.0, name: str | None = None) -> None:
        """
        Args:
            modelpool: pretrained model, experts and tokenizer.
            logit_scale: multiplier of the cosine similarities in the zero-shot heads (a softmax temperature).
            name: results folder name; defaults to the method's own name.
        """
        super().__init__()
        self.modelpool = modelpool
        self.logit_scale = logit_scale
        self.report_name = name or self.method_name
        self.task_names: list[str] = []
        self.test_report: dict | None = None
        self.strict_loading = False  # checkpoints hold only trainable tensors

    # ---- built once the TaskPool is known ----------------------------------------------------
    def setup(self, stage: str) -> None:
        if self.task_names:
            return
        datamodule = self.trainer.datamodule
        datamodule.setup(stage)
        self.task_names = list(datamodule.task_names)
        pretrained = self.modelpool.load_pretrained()
        self.heads = nn.ModuleDict(
            {t: self.build_head(pretrained, datamodule.class_descriptions[t]) for t in self.task_names}
        )
        self.test_accuracy = nn.ModuleDict(
            {t: MulticlassAccuracy(num_classes=datamodule.num_classes[t], average="micro") for t in self.task_names}
        )
        self.test_loss = nn.ModuleDict({t: MeanMetric() for t in self.task_names})
        self.build(pretrained)

    @torch.no_grad()
    def build_head(self, encoder: nn.Module, descriptions: list[str]) -> ZeroShotHead:
        inputs = self.modelpool.prepare_inputs({"text": descriptions}, torch.device("cpu"))
        return ZeroShotHead(encoder.eval()(**inputs), self.logit_scale).requires_grad_(False)

    def build(self, pretrained: nn.Module) -> None:
        """Create the method's model(s) from the pretrained encoder and the pool."""
        raise NotImplementedError

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        """Embeddings of a batch that comes from `task`."""
        raise NotImplementedError

    def task_logits(self, batch: dict, task: str) -> torch.Tensor:
        inputs = self.modelpool.prepare_inputs(batch, self.device)
        return self.heads[task](self.embed(inputs, task, batch))

    # ---- TaskPool evaluation ------------------------------------------------------------------
    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        task = self.task_names[dataloader_idx]
        logits = self.task_logits(batch, task)
        self.test_accuracy[task].update(logits, batch["label"])
        self.test_loss[task].update(nn.functional.cross_entropy(logits, batch["label"], reduction="none"))

    def collect_report(self) -> dict[str, dict[str, float]]:
        """Per-task accuracy and loss plus their unweighted average; resets the metrics.

        Every rank calls this: torchmetrics syncs the states across processes inside `compute`.
        """
        report: dict[str, dict[str, float]] = {}
        for task in self.task_names:
            report[task] = {
                "accuracy": float(self.test_accuracy[task].compute()),
                "loss": float(self.test_loss[task].compute()),
            }
            self.test_accuracy[task].reset()
            self.test_loss[task].reset()
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
        # torch's generators draw dropout masks; kept as tensors so checkpoints load with weights_only=True
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._rng_states_to_restore = checkpoint.get("rng_states")

    def on_train_start(self) -> None:
        """A resumed `fit` continues the random stream (dropout masks) where the checkpoint left it.

        Restored here, not at load time, because Lightning's set-up between loading and the first
        step may draw random numbers the uninterrupted run never drew at that point.
        """
        states = getattr(self, "_rng_states_to_restore", None)
        if states is not None:
            torch.set_rng_state(states["torch"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])
            self._rng_states_to_restore = None

    def checkpoint_metadata(self) -> dict:
        return {"method": self.method_name, "tasks": list(self.task_names)}
