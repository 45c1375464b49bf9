"""Fine-tune one task expert with `fit`: the family's model trains against the task's head."""
from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from dawe_merge.errors import ConfigError, check_number
from dawe_merge.methods.base import MergedModelModule
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.taskpool.tasks import TaskInfo


class ExpertFineTuning(MergedModelModule):
    """Cross-entropy fine-tuning of the pretrained model on `task`, saved where the ModelPool finds it.

    What trains is what the family left trainable: the model's parameters that require gradients,
    and the head if the family's `expert_head` is trainable (its own linear head). A frozen zero-shot
    head is the one every method uses, so the saved expert meets exactly the head it was trained with.
    """

    loads_checkpoints = True

    method_name = "expert"
    role = "expert"  # fine-tunes an expert; not a merging method

    def __init__(
        self,
        modelpool: ModelPool,
        task: str,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 10,
        name: str | None = None,
    ) -> None:
        """
        Args:
            task: the TaskPool task to fine-tune on; the expert is saved to the pool's folder for it.
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay.
            warmup_steps: linear warm-up steps of the learning rate.
        """
        super().__init__(modelpool, name=name or f"expert_{task}")
        check_number("model.init_args.lr", lr, 0.0, inclusive=False)
        check_number("model.init_args.weight_decay", weight_decay, 0.0)
        check_number("model.init_args.warmup_steps", warmup_steps, 0)
        self.expert_task = task
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps

    def build_heads(self, pretrained: nn.Module, infos: dict[str, TaskInfo]) -> nn.ModuleDict:
        """Only the fine-tuned task's head: other tasks' heads (or experts) need not exist yet."""
        if self.expert_task not in infos:
            raise ConfigError(f"Expert task '{self.expert_task}' is not in the TaskPool (tasks: {', '.join(infos)}).")
        return nn.ModuleDict({self.expert_task: self.modelpool.expert_head(infos[self.expert_task], pretrained)})

    def build(self, pretrained: nn.Module) -> None:
        self.encoder = self.modelpool.prepare_for_finetuning(pretrained).train()
        self.val_accuracy = MeanMetric()  # share of correct argmaxes: heads may score more than the task's classes

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.encoder(**inputs)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.task_logits(batch, self.expert_task)
        loss = nn.functional.cross_entropy(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(-1) == batch["label"]).float().mean(), prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_accuracy.update((self.task_logits(batch, self.expert_task).argmax(-1) == batch["label"]).float())

    def on_validation_epoch_end(self) -> None:
        self.last_val_accuracy = float(self.val_accuracy.compute())
        self.log(f"val/{self.expert_task}/acc", self.last_val_accuracy, prog_bar=True)
        self.val_accuracy.reset()

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        # linear warm-up from lr/warmup at the first step; transformers' get_constant_schedule_with_warmup starts at 0,
        # a first step that trains nothing, and would change every expert the committed tables were computed with
        warmup = max(1, self.warmup_steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_end(self) -> None:
        """Save the expert where the ModelPool looks for it (rank 0 only)."""
        if self.trainer.is_global_zero:
            accuracy = getattr(self, "last_val_accuracy", None)
            info = {"steps": self.global_step, "val_accuracy": accuracy}
            out = self.modelpool.save_expert(self.expert_task, self.encoder, self.heads[self.expert_task], info)
            shown = "n/a" if accuracy is None else f"{100 * accuracy:.2f}%"
            print(f"Saved expert '{self.expert_task}' to {out} (validation accuracy {shown} after {self.global_step} steps)")
