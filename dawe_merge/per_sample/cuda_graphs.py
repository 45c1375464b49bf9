"""Evaluation forwards replayed from CUDA graphs: one launch per batch instead of one per kernel.

At evaluation batch sizes a GPU spends much of a forward launching kernels rather than running them, and the
per-sample path launches more kernels than the static model. A CUDA graph records a forward's kernels once and
replays them with one launch, for both: the static model and the per-sample merge get the same treatment, so a
ratio of their speeds stays honest. A replay runs the captured kernels, so outputs equal the eager forward's,
except to float rounding where a library takes another path while a stream is captured (transformers then
skips its check for an all-ones attention mask) or a padded batch changes a kernel's shape.

A graph fixes every shape and address, so there is one graph per input signature (shapes after the batch
dimension, dtypes, autocast), captured at the first batch of that signature; a smaller batch (a split's last) is padded
by repeating its last row and the padded rows' outputs are dropped. That padding is only right when each row's
outputs depend on that row alone: never wrap a merge whose coefficients come from the whole batch. Capture
needs a function without host synchronisation (`.item()`, data-dependent shapes); one that has some runs
eagerly, with one warning. On a CPU there is nothing to capture and calls run eagerly.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

Tensors = dict[str, torch.Tensor]
Signature = tuple


class _Captured:
    """One graph with its static input buffers and outputs."""

    def __init__(self, graph: torch.cuda.CUDAGraph, batched: Tensors, shared: Tensors, outputs: Any) -> None:
        self.graph, self.batched, self.shared, self.outputs = graph, batched, shared, outputs
        self.batch = next(iter(batched.values())).shape[0]

    def run(self, batched: Tensors, shared: Tensors) -> Any:
        rows = next(iter(batched.values())).shape[0]
        for key, value in batched.items():
            static = self.batched[key]
            static[:rows].copy_(value)
            if rows < self.batch:  # padding: the last row again, so the padded rows compute something valid
                static[rows:].copy_(value[-1:].expand(self.batch - rows, *value.shape[1:]))
        for key, value in shared.items():
            self.shared[key].copy_(value)
        self.graph.replay()
        # the next replay overwrites the graph's outputs: hand out copies
        return pytree.tree_map(lambda t: t[:rows].clone() if isinstance(t, torch.Tensor) else t, self.outputs)


class GraphedCall:
    """`fn(batched, shared)` replayed from CUDA graphs; `batched` tensors share a leading batch dimension.

    Args:
        fn: the forward; it must not synchronise with the host, and row b of its outputs must depend only on
            row b of `batched` (and on `shared`).
        max_graphs: signatures captured at most; later ones run eagerly (each graph keeps its buffers).
    """

    def __init__(self, fn: Callable[[Tensors, Tensors], Any], max_graphs: int = 16) -> None:
        self.fn = fn
        self.max_graphs = max_graphs
        self.graphs: dict[Signature, _Captured | None] = {}  # None: capture failed, run eagerly
        self.pool = None
        self.warned = False

    def __call__(self, batched: Tensors, shared: Tensors | None = None) -> Any:
        shared = shared or {}
        first = next(iter(batched.values()))
        if not first.is_cuda or torch.is_grad_enabled():
            return self.fn(batched, shared)
        autocast = torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda")  # a bf16 graph is not an fp32 one
        signature = (
            tuple((k, v.shape[1:], v.dtype) for k, v in batched.items()),
            tuple((k, v.shape, v.dtype) for k, v in shared.items()),
            autocast,
        )
        captured = self.graphs.get(signature)
        if captured is None and signature not in self.graphs and len(self.graphs) < self.max_graphs:
            captured = self.graphs[signature] = self._capture(batched, shared)
        if captured is None or captured.batch < first.shape[0]:
            return self.fn(batched, shared)
        return captured.run(batched, shared)

    def _capture(self, batched: Tensors, shared: Tensors) -> _Captured | None:
        device = next(iter(batched.values())).device
        static_batched = {k: v.clone() for k, v in batched.items()}
        static_shared = {k: v.clone() for k, v in shared.items()}
        try:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # warm-up off the default stream: lazy initialisation, library handles
                for _ in range(2):
                    self.fn(static_batched, static_shared)
            torch.cuda.current_stream(device).wait_stream(side)
            self.pool = self.pool or torch.cuda.graph_pool_handle()  # one pool: graphs replay one at a time
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                outputs = self.fn(static_batched, static_shared)
            if not all(isinstance(leaf, torch.Tensor) for leaf in pytree.tree_leaves(outputs)):
                raise TypeError(f"outputs must be tensors (or containers of them) to be sliced per row, got {type(outputs).__name__}")
        except Exception as error:  # noqa: BLE001 - any capture failure means: run this signature eagerly
            torch.cuda.synchronize(device)
            if not self.warned:
                warnings.warn(f"CUDA graph capture failed, running eagerly: {type(error).__name__}: {str(error)[:200]}", stacklevel=3)
                self.warned = True
            return None
        return _Captured(graph, static_batched, static_shared, outputs)
