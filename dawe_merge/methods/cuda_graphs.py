"""`--trainer.callbacks+=dawe_merge.methods.CudaGraphs`: evaluation forwards replayed from CUDA graphs.

The merged model's forward (static, or DAWE's exact per-sample merge) is captured once per input signature and
replayed with one launch per batch (dawe_merge/per_sample/cuda_graphs.py, which says where the rounding can differ: reports agree
with eager evaluation to float rounding). Left off where it cannot be right: on a CPU, in training steps (gradients),
and for a merge per batch (DAWE with `per_sample_eval: false`), whose padded last batch would change its mean coding.
"""
from __future__ import annotations

import lightning as L
import torch
from torch import nn

from dawe_merge.per_sample.cuda_graphs import GraphedCall
from dawe_merge.per_sample.merged_forward import TaskVectorMerger

_COEFFICIENTS = "__coefficients"


def _graphed_merger(merger: TaskVectorMerger, max_graphs: int):
    forward = type(merger).forward

    def call(batched: dict, shared: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batched.items() if k != _COEFFICIENTS}
        return forward(merger, inputs, batched.get(_COEFFICIENTS, shared.get(_COEFFICIENTS)))

    graphed = GraphedCall(call, max_graphs)

    def replayed(inputs: dict, coefficients: torch.Tensor) -> torch.Tensor:
        if not all(isinstance(v, torch.Tensor) for v in inputs.values()):
            return forward(merger, inputs, coefficients)
        if coefficients.dim() == 3:  # one merge per sample: the coefficients are rows of the batch
            return graphed({**inputs, _COEFFICIENTS: coefficients})
        return graphed(dict(inputs), {_COEFFICIENTS: coefficients})

    return replayed


def _graphed_module(module: nn.Module, max_graphs: int):
    forward = type(module).forward
    graphed = GraphedCall(lambda batched, shared: forward(module, **batched), max_graphs)

    def replayed(*args, **inputs):
        if args or not inputs or not all(isinstance(v, torch.Tensor) for v in inputs.values()):
            return forward(module, *args, **inputs)
        return graphed(inputs)

    return replayed


class CudaGraphs(L.Callback):
    """Replays each evaluation batch's merged-model forward from a CUDA graph (one per input shape)."""

    def __init__(self, max_graphs: int = 16) -> None:
        """
        Args:
            max_graphs: input shapes captured at most per model (text batches padded to different lengths are
                different shapes); later shapes run eagerly.
        """
        self.max_graphs = max_graphs
        self.wrapped: list[nn.Module] = []

    def _targets(self, pl_module: L.LightningModule) -> list[nn.Module]:
        mergers = [m for m in pl_module.modules() if isinstance(m, TaskVectorMerger)]
        if mergers:
            return mergers
        encoder = getattr(pl_module, "encoder", None)  # static merges and the pretrained model
        experts = getattr(pl_module, "experts", None)  # each expert on its own task
        return [encoder] if isinstance(encoder, nn.Module) else list(experts.values()) if isinstance(experts, nn.ModuleDict) else []

    def _wrap(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type != "cuda" or getattr(pl_module, "merges_per_batch_at_evaluation", False):
            return
        for module in self._targets(pl_module):
            if module in self.wrapped:
                continue
            graphed = _graphed_merger if isinstance(module, TaskVectorMerger) else _graphed_module
            module.forward = graphed(module, self.max_graphs)
            self.wrapped.append(module)

    on_validation_start = on_test_start = on_predict_start = _wrap

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for module in self.wrapped:
            del module.forward  # the class's forward is back, and the graphs with their memory go
        self.wrapped = []
