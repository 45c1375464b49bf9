"""Test-time adaptation shared by AdaMerging and DAWE: an objective per task head (dawe_merge/methods/objectives.py:
the entropy, or the KL from the task's expert), summed over tasks.

`fit` receives one unlabelled batch per task per step (the TaskPool strips labels), so the loss
cannot see a label. Only the method's small trainable part (coefficients or hypernetwork) trains
and is checkpointed, with the metadata needed to refuse an incompatible checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from dawe_merge.errors import ConfigError, UserFacingError, check_number
from dawe_merge.merging.state_dict import stack_task_vectors
from dawe_merge.methods.base import MergedModelModule
from dawe_merge.methods.coefficient_tally import CoefficientTally
from dawe_merge.methods.expert_targets import expert_targets
from dawe_merge.methods.objectives import Objective, expert_kl, softmax_entropy
from dawe_merge.methods.validation_selection import check_selection_can_run, selection_message, selection_record
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.models.compatibility import IncompatibleCheckpointError, check_metadata
from dawe_merge.models.heads import adaptation_logits
from dawe_merge.models.hypernetwork import expand_codings
from dawe_merge.per_sample.merged_forward import TaskVectorMerger

MergeMode = Literal["task_wise", "layer_wise"]
StoreDtype = Literal["float32", "bfloat16"]
Selection = Literal["last", "best_validation"]


class AdaptationDiverged(UserFacingError, FloatingPointError):
    """Coefficients or loss became NaN/inf; nothing is saved from that step on."""


class TestTimeAdaptation(MergedModelModule):
    """Base of the adaptive merges; subclasses give `coefficients(batch, task, per_sample)`."""

    loads_checkpoints = True
    role = "adaptive"
    # adapt()'s steps per mode when none are given: the method configs' trainer.max_steps (tests/test_method_defaults.py)
    default_steps: dict[str, int] = {"task_wise": 150, "layer_wise": 100}

    def __init__(
        self,
        modelpool: ModelPool,
        mode: MergeMode = "task_wise",
        lr: float = 1e-3,
        backward_per_task: bool = False,
        task_vector_dtype: StoreDtype = "float32",
        selection: Selection = "last",
        objective: Objective = "expert_kl",
        temperature: float = 1.0,
        name: str | None = None,
    ) -> None:
        """
        Args:
            mode: task_wise (one coefficient per task) or layer_wise (one per task and merged tensor).
            objective: what adaptation minimises on each task's unlabelled batch: expert_kl (the KL divergence from the
                task's own expert's softened predictions: entropy rewards confidence, right or wrong, and fails where
                experts are weak), or entropy (of the merged model's predictions, the original methods' objective).
            temperature: expert_kl's softening T of both distributions (the loss is scaled by T²).
            lr: Adam learning rate.
            backward_per_task: backpropagate each task's batch on its own and accumulate the gradients (the same
                gradients): one merged model alive at a time instead of one per task, for large models and many tasks;
                the task-vector stack is then read once per task instead of once per step.
            task_vector_dtype: precision of the stored dense task vectors: float32 keeps the model's own (also for a
                float64 or float16 model); bfloat16 halves the memory that grows with the number of tasks, θ0 and
                every merged weight staying in the model's precision.
            selection: the adapted state `test`, `predict` and exports use: `last` (the last step's), or
                `best_validation`: of the states monitored during `fit` on the validation splits (held out from the
                training data) — step 0, the start (task arithmetic with init_lambda), then every val_check_interval —
                the one with the highest average accuracy, the earlier on a tie: never below the start on that data.
        """
        super().__init__(modelpool, name=name)
        self.backward_per_task = backward_per_task
        if task_vector_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"task_vector_dtype must be 'float32' or 'bfloat16', got {task_vector_dtype!r}.")
        self.task_vector_dtype = task_vector_dtype
        self.automatic_optimization = not backward_per_task
        if mode not in ("task_wise", "layer_wise"):
            raise ConfigError(f"mode must be 'task_wise' or 'layer_wise', got {mode!r}.")
        check_number("model.init_args.lr", lr, 0.0, inclusive=False)
        self.mode = mode
        self.lr = lr
        if selection not in ("last", "best_validation"):
            raise ConfigError(f"selection must be 'last' or 'best_validation', got {selection!r}.")
        self.selection = selection
        if objective not in ("entropy", "expert_kl"):
            raise ConfigError(f"model.init_args.objective must be entropy or expert_kl, got {objective!r}.")
        check_number("model.init_args.temperature", temperature, 0.0, inclusive=False)
        self.objective, self.temperature = objective, temperature
        self._expert_targets: dict[str, dict[int, torch.Tensor]] = {}  # expert_kl: task → input index → q
        self.history: list[dict[str, float]] = []
        self.best_validation: dict | None = None  # {"step", "average", "state"}: the best state monitored on validation data

    def setup(self, stage: str) -> None:
        if stage == "fit" and (self.trainer.max_steps == 0 or self.trainer.max_epochs == 0):
            raise ConfigError(
                "trainer.max_steps is 0: adaptation would save its untrained start. Give max_steps >= 1, or evaluate "
                "the start directly with `test` (it is task arithmetic with init_lambda)."
            )
        if stage == "fit" and self.selection == "best_validation":
            check_selection_can_run(self.trainer)
        super().setup(stage)

    def build(self, pretrained: nn.Module) -> None:
        stacked = stack_task_vectors(self.modelpool.task_vectors(self.task_names, pretrained))
        self.merger = TaskVectorMerger(pretrained, stacked, store_dtype=torch.bfloat16 if self.task_vector_dtype == "bfloat16" else None)
        self.build_trainable()

    def build_trainable(self) -> None:
        raise NotImplementedError

    @property
    def num_coefficients(self) -> int:
        """K: outputs per input, T (task-wise) or T·L (layer-wise, row-major (task, tensor))."""
        return len(self.task_names) * (self.merger.num_layers if self.mode == "layer_wise" else 1)

    def expand(self, flat: torch.Tensor) -> torch.Tensor:
        """(..., K) → (..., T, L)."""
        return expand_codings(flat, len(self.task_names), self.merger.num_layers, self.mode == "layer_wise")

    def coefficients(self, batch: dict, task: str, per_sample: bool) -> torch.Tensor:
        """(T, L) shared by the batch, or (B, T, L) one set per sample."""
        raise NotImplementedError

    def embed(self, inputs: dict[str, torch.Tensor], task: str, batch: dict) -> torch.Tensor:
        coefficients = self.coefficients(batch, task, per_sample=True)
        if self.recheck_rows is not None:  # close calls again in fp32: their coefficients were recorded in bf16
            if self.trainer.predicting and self._predicted_coefficients.dim() == 3:
                self._predicted_coefficients = self._predicted_coefficients.to(torch.float32, copy=True)
                self._predicted_coefficients[self.recheck_rows] = coefficients.detach().float()
        elif self.trainer.testing:
            self.tally.add(task, coefficients.detach())
        elif self.trainer.predicting:
            self._predicted_coefficients = coefficients.detach()
        return self.merger(inputs, coefficients)

    def prediction_extras(self, count: int) -> list[dict]:
        """Each input's coefficients: one per task (task-wise), or per task and merged tensor (layer-wise)."""
        coefficients = self._predicted_coefficients
        per_input = coefficients if coefficients.dim() == 3 else coefficients.expand(count, -1, -1)  # AdaMerging: shared
        values = per_input[:, :, 0] if self.mode == "task_wise" else per_input
        return [{"coefficients": values[k].double().round(decimals=6).tolist()} for k in range(count)]

    def adapt(self, taskpool, **trainer_kwargs) -> TestTimeAdaptation:
        """Test-time adaptation outside the CLI (`fit` on the TaskPool's unlabelled test inputs), e.g. before `export`.

        `trainer_kwargs` go to `lightning.Trainer` (max_steps, accelerator, ...); the defaults keep a notebook quiet.
        """
        import lightning as L

        from dawe_merge.callbacks.random_state import RandomStateInCheckpoints

        defaults = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False, "max_steps": self.default_steps[self.mode],
                    "limit_val_batches": 0, "use_distributed_sampler": False}  # fmt: skip
        callbacks = [*(trainer_kwargs.pop("callbacks", None) or []), RandomStateInCheckpoints()]
        L.Trainer(**{**defaults, **trainer_kwargs, "callbacks": callbacks}).fit(self, datamodule=taskpool)
        return self

    def on_test_epoch_start(self) -> None:
        self.tally = CoefficientTally(self.task_names, self.merger.num_layers)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.trainer.world_size > 1:
            self.tally.sum_over_ranks(lambda t: self.trainer.strategy.reduce(t.to(self.device), reduce_op="sum").cpu())

    def coefficient_summary(self) -> dict | None:
        """Mean (T, L) coefficients per input task of the last test run: heatmap rows and, layer-wise, per-tensor curves."""
        tally = getattr(self, "tally", None)
        return None if tally is None else tally.summary(list(self.merger.names) if self.mode == "layer_wise" else None)

    # ---- adaptation -------------------------------------------------------------------------------
    def step_coefficients(self, batch: dict[str, dict]) -> torch.Tensor:
        """(K, T, L): the shared merge of each of this step's K task batches; (T, L) if all share one."""
        return torch.stack([self.coefficients(b, task, per_sample=False) for task, b in batch.items()])

    def training_step(self, batch: dict[str, dict], batch_idx: int) -> torch.Tensor:
        batch = {task: b for task, b in batch.items() if b is not None}  # a shorter loader may be exhausted
        if self.backward_per_task:
            losses = self._backward_each_task(batch)
            with torch.no_grad():
                coefficients = self.step_coefficients(batch)
        else:
            inputs = [self.modelpool.prepare_inputs(b, self.device) for b in batch.values()]
            coefficients = self.step_coefficients(batch)
            embeddings = self.merger.forward_each(inputs, coefficients)
            losses = {task: self._objective(task, e, b) for (task, b), e in zip(batch.items(), embeddings)}
        loss = torch.stack(list(losses.values())).sum()
        self._stop_if_diverged(loss)
        self.log_dict({f"train/{t}/{self.objective}": v for t, v in losses.items()})
        self.log(f"train/{self.objective}", loss, prog_bar=True)
        # each task vector's coefficient this step, averaged over the step's task batches (and tensors, layer-wise)
        means = coefficients.detach().float().reshape(-1, len(self.task_names), coefficients.shape[-1]).mean(dim=(0, 2))
        self.log_dict({f"coefficients/{t}": m for t, m in zip(self.task_names, means)})
        return loss

    def _objective(self, task: str, embedding: torch.Tensor, batch: dict) -> torch.Tensor:
        logits = adaptation_logits(self.heads[task], embedding)
        if self.objective == "entropy":
            return softmax_entropy(logits).mean()
        targets = torch.stack([self._expert_targets[task][int(i)] for i in batch["index"]]).to(logits.device)
        return expert_kl(logits, targets, self.temperature).mean()

    def on_fit_start(self) -> None:
        if self.objective == "expert_kl" and not self._expert_targets:  # computed once, also across a resume
            self._expert_targets = expert_targets(self.modelpool, self.heads, self.taskpool.feature_loaders(), self.device, self.temperature)

    def _backward_each_task(self, batch: dict[str, dict]) -> dict[str, torch.Tensor]:
        """One forward and backward per task batch, gradients accumulated, then one optimiser step."""
        optimizer = self.optimizers()
        optimizer.zero_grad()
        losses = {}
        for task, b in batch.items():
            inputs = self.modelpool.prepare_inputs(b, self.device)
            (embedding,) = self.merger.forward_each([inputs], self.step_coefficients({task: b}))
            loss = self._objective(task, embedding, b)
            self._stop_if_diverged(loss)
            self.manual_backward(loss)
            losses[task] = loss.detach()
        optimizer.step()
        return losses

    def _stop_if_diverged(self, loss: torch.Tensor | None = None) -> None:
        """Raise on a non-finite loss or coefficient, before it reaches the optimiser or a checkpoint.

        Checkpoints on disk then all hold finite values: the error names the last good one.
        """
        bad = [] if loss is None or torch.isfinite(loss) else [f"loss {loss.item()}"]
        bad += [n for n, p in self.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
        if not bad:
            return
        last = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or ""
        kept = (
            f"The last good checkpoint is {last}: resume from it with a lower lr (fit ... --ckpt_path {last})."
            if last and Path(last).exists()
            else "No checkpoint was saved yet: lower the learning rate and start again."
        )
        raise AdaptationDiverged(f"Adaptation diverged at step {self.global_step} (non-finite: {', '.join(bad[:3])}); stopped. {kept}")

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.lr)

    # ---- evaluation during adaptation (monitoring only: labels never reach the loss) -----------------
    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.test_step(batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        report = self.validation_report = self.collect_report()
        if self.trainer.state.fn != "fit":  # `validate`: a report on the validation splits, no curve
            self.log("val/avg/acc", report["average"]["accuracy"], prog_bar=True)
            return
        row = {"step": float(self.global_step), **{t: report[t]["accuracy"] for t in self.task_names}}
        row["average"] = report["average"]["accuracy"]
        self.history = [r for r in self.history if r["step"] != row["step"]] + [row]  # a resume re-checks its start step
        if getattr(self.trainer.datamodule, "monitor_split", None) == "val":
            best = self.best_validation
            if best is None or row["average"] > best["average"]:
                state = {k: v.detach().clone().cpu() for k, v in self.saved_state().items()}
                self.best_validation = {"step": int(self.global_step), "average": row["average"], "state": state}
        self.log_dict({f"val/{k}/acc": v for k, v in row.items() if k != "step"}, prog_bar=False)
        self.log("val/avg/acc", row["average"], prog_bar=True)

    # ---- checkpoints -------------------------------------------------------------------------------
    def checkpoint_metadata(self) -> dict:
        return {
            **super().checkpoint_metadata(),
            "mode": self.mode,
            "merged_tensors": list(self.merger.names) if self.mode == "layer_wise" else None,
            "num_coefficients": self.num_coefficients,
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self._stop_if_diverged()  # never write a checkpoint with NaN/inf coefficients
        super().on_save_checkpoint(checkpoint)
        checkpoint["adaptation_history"] = list(self.history)  # a resumed run keeps the whole curve
        if self.best_validation is not None:
            checkpoint["best_validation"] = self.best_validation

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("merge_metadata")
        if saved is None:
            raise IncompatibleCheckpointError("Checkpoint has no merge metadata: it was not written by this project's adaptation.")
        check_metadata(saved, self.checkpoint_metadata())
        super().on_load_checkpoint(checkpoint)
        self.history = list(checkpoint.get("adaptation_history", []))
        self.best_validation = checkpoint.get("best_validation")
        fitting = self._trainer is not None and self._trainer.state.fn == "fit"
        if self.selection == "best_validation" and not fitting:  # evaluate the selected state, not the last
            if self.best_validation is None:
                raise IncompatibleCheckpointError(
                    "selection best_validation: this checkpoint holds no state selected on validation data (it was adapted "
                    "with monitor_split test, or without monitoring). Use --model.init_args.selection last, or adapt again."
                )
            checkpoint["state_dict"] = {**checkpoint["state_dict"], **self.best_validation["state"]}
            print(selection_message(self.best_validation, self.history))

    def on_fit_end(self) -> None:
        """With best_validation, the module leaves `fit` holding the selected state (for an export or `merge` right after)."""
        super().on_fit_end()
        if self.selection == "best_validation" and self.best_validation is not None:
            self.load_state_dict(self.best_validation["state"], strict=False)
            print(selection_message(self.best_validation, self.history))

    def selection_record(self) -> dict | None:
        """For the report: the step whose state was evaluated, when `best_validation` chose it."""
        if self.selection != "best_validation" or self.best_validation is None:
            return None
        return selection_record(self.best_validation, self.history)
