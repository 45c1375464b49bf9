"""Fine-tune one task expert with `fit`: the whole backbone trains against the task's frozen head."""
from __future__ import annotations

import json

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from src.errors import ConfigError
from src.methods.base import MergedModelModule
from src.modelpool.text_pool import TextModelPool


class ExpertFineTuning(MergedModelModule):
    """Cross-entropy fine-tuning of the pretrained backbone on `task`; saved in `from_pretrained` format.

    The head is the frozen zero-shot head every method uses, so the saved expert meets exactly the
    head it was trained with when it is later merged.
    """

    method_name = "expert"

    def __init__(
        self,
        modelpool: TextModelPool,
        task: str,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 10,
        logit_scale: float = 20.0,
        name: str | None = None,
    ) -> None:
        """
        Args:
            task: the TaskPool task to fine-tune on; the expert is saved to the pool's folder for it.
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay.
            warmup_steps: linear warm-up steps of the learning rate.
        """
        super().__init__(modelpool, logit_scale=logit_scale, name=name or f"expert_{task}")
        self.finetune_task = task
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps

    def build(self, pretrained: nn.Module) -> None:
        if self.finetune_task not in self.task_names:
            raise ConfigError(
                f"Expert task '{self.finetune_task}' is not in the TaskPool (tasks: {', '.join(self.task_names)})."
            )
        self.encoder = pretrained.train()
        self.val_accuracy = MulticlassAccuracy(num_classes=self.heads[self.finetune_task].num_classes, average="micro")

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        return self.encoder(**inputs)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.task_logits(batch, self.finetune_task)
        loss = nn.functional.cross_entropy(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(-1) == batch["label"]).float().mean(), prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_accuracy.update(self.task_logits(batch, self.finetune_task), batch["label"])

    def on_validation_epoch_end(self) -> None:
        self.last_val_accuracy = float(self.val_accuracy.compute())
        self.log(f"val/{self.finetune_task}/acc", self.last_val_accuracy, prog_bar=True)
        self.val_accuracy.reset()

    def configure_optimizers(self):
        params = [p for p in self.encoder.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        warmup = max(1, self.warmup_steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_end(self) -> None:
        """Save the expert where the ModelPool looks for it (rank 0 only)."""
        if self.trainer.is_global_zero:
            out = self.modelpool.expert_output_dir(self.finetune_task)
            out.mkdir(parents=True, exist_ok=True)
            self.encoder.backbone.save_pretrained(out)
            self.modelpool.tokenizer.save_pretrained(out)
            accuracy = getattr(self, "last_val_accuracy", None)
            info = {"task": self.finetune_task, "steps": self.global_step, "val_accuracy": accuracy, "pretrained": self.modelpool.pretrained}
            (out / "expert_info.json").write_text(json.dumps(info, indent=2) + "\n")
            shown = "n/a" if accuracy is None else f"{100 * accuracy:.2f}%"
            print(f"Saved expert '{self.finetune_task}' to {out} (validation accuracy {shown} after {self.global_step} steps)")
