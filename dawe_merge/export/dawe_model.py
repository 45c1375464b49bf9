"""DAWE as a model you can run: raw inputs in, each input merged under its own coefficients, per-task outputs out.

The same parts `test` uses (feature extractor → hypernetwork → exact per-sample merge → the task's
head), held by one plain `nn.Module`, so an adapted DAWE leaves the training run: `DAWE.merge()`
returns it, `load_dawe(folder)` rebuilds it in another process from an exported folder.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dawe_merge.errors import ConfigError
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.models.features import FeatureExtractor
from dawe_merge.models.hypernetwork import Hypernetwork, expand_codings
from dawe_merge.per_sample.merged_forward import TaskVectorMerger
from dawe_merge.taskpool.tasks import TaskInfo


class DAWEModel(nn.Module):
    """θ(x) = θ0 + Σ_t c_t(x) τ_t with c(x) = hypernetwork(features(x)), per input, for a batch at once.

    Call it with the family's raw inputs (a list of texts or prompts, a list of PIL images) or a batch
    dict holding them under `input_column`. With `task` it returns that task's head outputs (class
    logits; a decoder evaluated by generation: its chosen answers); without, the merged model's own
    outputs (embeddings, first-step logits). `return_coefficients=True` adds the (B, T, L) coefficients.
    """

    def __init__(
        self,
        modelpool: ModelPool,
        feature_extractor: FeatureExtractor,
        merger: TaskVectorMerger,
        hypernetwork: Hypernetwork,
        heads: nn.ModuleDict,
        tasks: Sequence[TaskInfo] | Sequence[str] | dict[str, TaskInfo],
        mode: str,
    ) -> None:
        super().__init__()
        self.modelpool = modelpool
        self.feature_extractor = feature_extractor
        self.merger = merger
        self.hypernetwork = hypernetwork
        self.heads = heads
        infos = list(tasks.values()) if isinstance(tasks, dict) else list(tasks)
        self.task_infos = {i.name: i for i in infos if isinstance(i, TaskInfo)}
        self.task_names = [i.name if isinstance(i, TaskInfo) else i for i in infos]
        self.mode = mode

    @property
    def input_column(self) -> str:
        return self.modelpool.input_column

    @property
    def device(self) -> torch.device:
        return next(self.hypernetwork.parameters()).device

    def as_batch(self, inputs) -> dict:
        """A batch dict from raw inputs (a list, or one input) or a batch dict."""
        if isinstance(inputs, dict):
            if self.input_column not in inputs:
                raise ConfigError(f"The batch has no '{self.input_column}' key (keys: {sorted(inputs)}); this model reads {self.input_column}s.")
            return inputs
        values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return {self.input_column: values}

    @torch.no_grad()
    def coefficients(self, inputs) -> torch.Tensor:
        """(B, T, L): each input's coefficient for each task vector and merged tensor (task-wise: equal over L)."""
        batch = self.as_batch(inputs)
        codings = self.hypernetwork(self.feature_extractor.features(batch).to(self.device))
        return expand_codings(codings, len(self.task_names), self.merger.num_layers, self.mode == "layer_wise")

    @torch.no_grad()
    def forward(self, inputs, task: str | None = None, return_coefficients: bool = False):
        batch = self.as_batch(inputs)
        if task is not None and task not in self.heads:
            known = ", ".join(self.heads) or "none (exported without its TaskPool)"
            raise ConfigError(f"No head for task '{task}'; heads: {known}.")
        coefficients = self.coefficients(batch)
        prepare = self.modelpool.evaluation_inputs if task is not None else self.modelpool.prepare_inputs
        outputs = self.merger(prepare(batch, self.device), coefficients)
        if task is not None:
            outputs = self.heads[task](outputs)
        return (outputs, coefficients) if return_coefficients else outputs
