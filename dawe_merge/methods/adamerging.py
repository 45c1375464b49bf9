"""AdaMerging: task-wise or layer-wise merging coefficients learned by test-time adaptation (the KL from each task's expert, or entropy)."""
from __future__ import annotations

import torch
from torch import nn

from dawe_merge.methods.adaptive import MergeMode, Selection, StoreDtype, TestTimeAdaptation
from dawe_merge.methods.objectives import Objective
from dawe_merge.modelpool.base import ModelPool


class AdaMerging(TestTimeAdaptation):
    """θ = θ_0 + Σ_t λ_t τ_t (task-wise) or θ^l = θ_0^l + Σ_t λ_t^l τ_t^l (layer-wise), λ learned.

    Every sample of every task shares the same λ: AdaMerging is DAWE without the input.
    """

    method_name = "adamerging"

    default_steps = {"task_wise": 125, "layer_wise": 75}

    def __init__(
        self,
        modelpool: ModelPool,
        mode: MergeMode = "task_wise",
        init_lambda: float = 0.3,
        clamp: bool = False,
        lr: float = 1e-2,
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
            lr: Adam learning rate of the adaptation.
            backward_per_task: backpropagate each task's batch on its own, gradients accumulated (the same gradients, one
                merged model alive at a time: for large models and many tasks).
            task_vector_dtype: precision of the stored dense task vectors: float32 keeps the model's own; bfloat16 halves
                the memory that grows with the number of tasks.
            selection: the adapted state `test`, `predict` and exports use: last, or best_validation (of the states
                monitored on the validation splits, step 0 = task arithmetic included, the best average accuracy).
            objective: expert_kl (the KL from each task's expert), or entropy (the original methods'); the
                task-wise configs' choice on validation data (dawe_merge/methods/objectives.py).
            temperature: expert_kl's softening of both distributions.
            init_lambda: starting value of every coefficient (0.3 = task arithmetic's default).
            clamp: clamp the coefficients to [0, 1] when merging (the AdaMerging paper's code does; FusionBench does not).
        """
        super().__init__(modelpool, mode=mode, lr=lr, backward_per_task=backward_per_task, task_vector_dtype=task_vector_dtype, selection=selection,
                         objective=objective, temperature=temperature, name=name or f"adamerging_{mode}")
        self.init_lambda = init_lambda
        self.clamp = clamp

    def build_trainable(self) -> None:
        self.lambdas = nn.Parameter(torch.full((self.num_coefficients,), float(self.init_lambda)))

    def coefficients(self, batch: dict, task: str, per_sample: bool) -> torch.Tensor:
        lambdas = self.lambdas.clamp(0.0, 1.0) if self.clamp else self.lambdas
        return self.expand(lambdas)  # shared by every sample: per-sample merging would give the same result

    def merged_module(self) -> nn.Module:
        """θ0 + Σ_t λ_t τ_t with the learned λ, as a standalone module (what `test` evaluates)."""
        return self.merger.merged_model(self.coefficients({}, "", per_sample=False).detach())

    def learned(self) -> dict:
        """The learned λ as (T, L) rows (one column when task-wise) with the merged tensors' names."""
        with torch.no_grad():
            table = self.coefficients({}, "", per_sample=False)
        table = table[:, :1] if self.mode == "task_wise" else table
        return {"kind": "coefficients", "tasks": list(self.task_names), "tensors": None if self.mode == "task_wise" else list(self.merger.names),
                "values": table.double().round(decimals=6).tolist()}  # fmt: skip

    def step_coefficients(self, batch: dict[str, dict]) -> torch.Tensor:
        """Every task batch shares the same λ: one merge per step serves them all."""
        return self.coefficients({}, "", per_sample=False)
