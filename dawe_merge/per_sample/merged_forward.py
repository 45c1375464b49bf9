"""Run a model under merged weights θ = θ_0 + Σ_t c_t τ_t, shared by a batch or exact per sample.

Coefficients are always given as (T, L) for one merge shared by the batch, or (B, T, L) for one merge
per sample, with L the number of merged tensors (task-wise callers repeat their T values over L).

Per-sample merging never runs the model B times. Each leaf module that owns merged tensors gets a
per-sample forward for the duration of the call:

* Linear / Conv2d: per-sample weights are built with one matmul, (B×(T+1))·((T+1)×P) over the stack
  [τ_1; …; τ_T; θ0], then applied with one batched matmul (grouped convolution). Building costs
  B·(T+1)·P multiply-adds, against B·N·P for applying them to N tokens/positions, so it is cheap
  whenever N ≳ T. The alternative (mixing the outputs of
  the T task-vector layers, y = W_0x + Σ_t c_t τ_t x) costs (T+1)·B·N·P and loses for any N > 1, so it
  is not used.
* Linear with low-rank (LoRA) task vectors τ_t = B_t A_t: never a dense per-sample weight;
  y = W_0 x + Σ_t c_t B_t (A_t x) as two thin products over all tasks at once, the way batched
  multi-LoRA serving runs many adapters in one batch.
* Embedding: only the looked-up rows are mixed (gather, then a T-term weighted sum): the 30k-row
  vocabulary matrix is never copied.
* LayerNorm: normalise without affine, then apply per-sample scale and shift.
* Vectors (biases, LayerNorm scales): all merged vectors of one length share one buffer, so their
  per-sample values come out of one batched product per length before the model runs, instead of one
  product per vector. With the coefficients extended by θ0's 1 once for every tensor, a per-sample
  forward adds one product per merged matrix to the static forward's operations, and a few in all for
  the vectors: on a GPU, where small batches are bound by kernel launches, that count is the cost.
* A module whose family registered how its own parameters batch (`register_batched_parameters`: CLIP's
  class token, registered when `dawe_merge.families.vision` is imported): its forward once, with those parameters
  given per sample.
* Any other module with its own merged tensors: a loop over samples with `functional_call` on that
  module alone (inputs must be batch-first). Exact but slow; only small modules should land here.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call

from dawe_merge.merging.low_precision import LowPrecisionStack
from dawe_merge.merging.low_rank import FactorStack
from dawe_merge.per_sample.layers import SampleRows, Workspace, mix, mix_factored, per_sample_forward


class TaskVectorMerger(nn.Module):
    """A frozen model plus stacked task vectors, evaluated under given merging coefficients.

    Args:
        model: the pretrained model (θ_0); it is frozen, and its merged parameters become views of the
            stacks' θ0 rows (same values, stored once).
        task_vectors: name → (T, *shape) stacked task vectors, names as in `model.named_parameters()`.
            Their order defines the layer index used by layer-wise coefficients.
        store_dtype: keep dense task vectors in this dtype (bfloat16 halves the part of memory that grows
            with the number of tasks); θ0 and the merged tensors keep the model's dtype. None: the model's.
    """

    def __init__(self, model: nn.Module, task_vectors: dict[str, torch.Tensor | FactorStack], store_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        params = dict(model.named_parameters())
        unknown = [n for n in task_vectors if n not in params]
        if unknown:
            raise KeyError(f"Task vectors for tensors the model does not have: {unknown[:5]}")
        linear_weights = {f"{m}.weight" if m else "weight" for m, module in model.named_modules() if type(module) is nn.Linear}
        self.names = list(task_vectors)
        self.layer_index = {n: i for i, n in enumerate(self.names)}
        counts = {tv.tasks if isinstance(tv, FactorStack) else tv.shape[0] for tv in task_vectors.values()}
        if len(counts) != 1:
            raise ValueError(f"Every tensor needs the same number of task vectors, got {sorted(counts)}.")
        self.num_tasks = counts.pop()
        self._workspace = Workspace()
        self._bucket_of: dict[str, tuple[str, int]] = {}  # vector name → (bucket buffer, row): `_bucket_vectors`
        self._buckets: dict[str, list[str]] = {}
        self._parameters_by_name = params  # a plain dict: θ0 of factored weights, not registered twice
        self._factored: set[str] = set()
        self._low_precision: set[str] = set()
        for name, tv in task_vectors.items():
            theta0 = params[name].detach()
            if isinstance(tv, FactorStack) and name in linear_weights:
                # a Linear weight's low-rank updates stay factored; θ0 stays the model's own parameter
                self._factored.add(name)
                self.register_buffer(self._key(name, "A"), tv.A.to(theta0.dtype), persistent=False)
                self.register_buffer(self._key(name, "B"), tv.B.to(theta0.dtype), persistent=False)
                continue
            if isinstance(tv, FactorStack):  # factored updates of anything else are expanded once
                tv = tv.dense()
            if tv.shape[1:] != params[name].shape:
                raise ValueError(f"Task vector '{name}' has shape {tuple(tv.shape[1:])}, tensor has {tuple(params[name].shape)}.")
            if store_dtype is not None and store_dtype != theta0.dtype:
                self._low_precision.add(name)  # θ0 stays the model's own parameter, in its own dtype
                self.register_buffer(self._key(name, "tau"), tv.detach().to(store_dtype), persistent=False)
                continue
            stack = torch.cat([tv.detach().to(theta0.dtype), theta0.unsqueeze(0)])  # [τ_1; …; τ_T; θ0]
            self.register_buffer(self._key(name), stack, persistent=False)
        # a tensor no expert changed (BERT's pooler under mean pooling) is θ0 under any coefficients:
        # it is left out of every merge instead of being rebuilt per batch or per sample
        self._changed = [n for n in self.names if self._is_changed(n)]
        self._autocast_copies: dict[torch.dtype, dict[str, torch.Tensor]] = {}  # `_stacks_under_autocast`
        self._bucket_vectors()
        self._link_parameters()

    def _bucket_vectors(self) -> None:
        """Move the dense stacks of merged vectors into one (K, T + 1, n) buffer per length n (K ≥ 2 vectors).

        `stack(name)` is then a contiguous slice of its bucket, so merges, θ0 links and exports read it as
        before, and a per-sample forward builds a whole bucket with one batched product.
        """
        by_length: dict[int, list[str]] = {}
        for name in self._changed:
            if name not in self._factored and name not in self._low_precision and self.stack(name).dim() == 2:
                by_length.setdefault(self.stack(name).shape[1], []).append(name)
        for length, names in by_length.items():
            if len(names) < 2:
                continue
            key = f"vectors__{length}"
            self.register_buffer(key, torch.stack([self.stack(n) for n in names]), persistent=False)
            # on the stacks' device: indexing with a host tensor would copy it in every forward (and break CUDA-graph capture)
            layers = torch.tensor([self.layer_index[n] for n in names], device=getattr(self, key).device)
            self.register_buffer(f"{key}__layers", layers, persistent=False)
            for index, name in enumerate(names):
                delattr(self, self._key(name))
                self._bucket_of[name] = (key, index)
            self._buckets[key] = names

    def _is_changed(self, name: str) -> bool:
        if name in self._factored:
            factors = self.factors(name)
            return bool(factors.A.any()) and bool(factors.B.any())
        if name in self._low_precision:
            return bool(self.updates(name).tau.any())
        return bool(self.stack(name)[:-1].any())

    def _link_parameters(self) -> None:
        """Make each merged parameter of the model a view of its stack's θ0 row.

        θ0 is then stored once (not once in the model and once in the stack), and the model's
        parameters keep their values. Device and dtype moves convert buffers and parameters
        separately, so `_apply` links them again afterwards.
        """
        for name, param in self.model.named_parameters():
            if name in self.layer_index and name not in self._factored and name not in self._low_precision:
                row = self.stack(name)[-1]
                if param.data_ptr() != row.data_ptr():
                    param.data = row

    def _apply(self, fn, recurse: bool = True):
        out = super()._apply(fn, recurse)
        self._link_parameters()
        self._autocast_copies = {}
        return out

    def _stacks_under_autocast(self) -> dict[str, torch.Tensor]:
        """Dense stacks and vector buckets in the autocast dtype, when a per-sample forward runs under autocast.

        Autocast would cast every fp32 stack to its dtype in each forward (reading (T+1)× the model in fp32 and
        writing it again in bf16 before the product that builds the per-sample weights). Cast once and kept,
        the products read half the bytes and give the same numbers: autocast's cast is this same rounding.
        The copies cost half the fp32 stacks' memory; they are dropped when the merger moves.
        """
        device = next(self.model.parameters()).device.type
        if not torch.is_autocast_enabled(device):
            return {}
        dtype = torch.get_autocast_dtype(device)
        if dtype not in self._autocast_copies:
            copies = {key: getattr(self, key).to(dtype) for key in self._buckets}
            for name in self._changed:
                if name not in self._factored and name not in self._low_precision and name not in self._bucket_of:
                    copies[name] = self.stack(name).to(dtype)
            self._autocast_copies[dtype] = copies
        return self._autocast_copies[dtype]

    @staticmethod
    def _key(name: str, part: str = "stack") -> str:
        return f"{part}__" + name.replace(".", "__")

    def stack(self, name: str) -> torch.Tensor:
        """(T + 1, *shape): the T task vectors of tensor `name`, then θ0."""
        if name in self._bucket_of:
            key, index = self._bucket_of[name]
            return getattr(self, key)[index]
        return getattr(self, self._key(name))

    def factors(self, name: str) -> FactorStack:
        """The low-rank updates of a Linear weight, as views of this merger's (moved) buffers."""
        return FactorStack(getattr(self, self._key(name, "A")), getattr(self, self._key(name, "B")), self.num_tasks)

    def updates(self, name: str) -> torch.Tensor | FactorStack | LowPrecisionStack:
        if name in self._factored:
            return self.factors(name)
        if name in self._low_precision:
            return LowPrecisionStack(getattr(self, self._key(name, "tau")), self._parameters_by_name[name])
        return self.stack(name)

    def _merge(self, name: str, coef: torch.Tensor) -> torch.Tensor:
        """θ0 + Σ_t coef[..., t] τ_t of tensor `name`; coef (T,) or (K, T)."""
        if name not in self._factored:
            return mix(self.updates(name), coef)
        return self._parameters_by_name[name] + mix_factored(self.factors(name), coef)

    @property
    def num_layers(self) -> int:
        return len(self.names)

    def check_coefficients(self, coefficients: torch.Tensor) -> None:
        if coefficients.shape[-2:] != (self.num_tasks, self.num_layers) or coefficients.dim() not in (2, 3):
            raise ValueError(
                f"Coefficients must be (T, L) or (B, T, L) with T={self.num_tasks}, L={self.num_layers}; "
                f"got {tuple(coefficients.shape)}."
            )

    def merged_parameters(self, coefficients: torch.Tensor) -> dict[str, torch.Tensor]:
        """θ_0 + Σ_t c[t, l] τ_t for every merged tensor l (coefficients (T, L)); unchanged tensors stay θ0."""
        return {n: self._merge(n, coefficients[:, self.layer_index[n]]) for n in self._changed}

    @torch.no_grad()
    def merged_model(self, coefficients: torch.Tensor) -> nn.Module:
        """A standalone copy of the model holding θ under shared (T, L) coefficients: what `forward` computes, frozen in.

        The same `_merge` builds the tensors, so the copy's outputs equal `forward(inputs, coefficients)`.
        """
        self.check_coefficients(coefficients)
        if coefficients.dim() != 2:
            raise ValueError("A standalone merged model needs one (T, L) coefficient set shared by every input.")
        model = copy.deepcopy(self.model)
        merged = self.merged_parameters(coefficients)
        for name, param in model.named_parameters():
            if name in merged:
                param.data = merged[name].detach().clone()
        return model

    def forward(self, inputs: dict[str, torch.Tensor], coefficients: torch.Tensor) -> torch.Tensor:
        self.check_coefficients(coefficients)
        if coefficients.dim() == 2:
            return functional_call(self.model, self.merged_parameters(coefficients), args=(), kwargs=inputs)
        with self._per_sample(coefficients):
            return self.model(**inputs)

    def forward_each(self, batches: list[dict[str, torch.Tensor]], coefficients: torch.Tensor) -> list[torch.Tensor]:
        """Batch k under its own shared merge coefficients[k] ((K, T, L)), or every batch under one (T, L).

        Why not K calls of `forward`: adaptation runs one batch per task per step, and each merge
        reads every stack ((T+1)× the model's memory) forward and again backward. Here all K merges
        come out of one product per tensor, (K, T+1)·(T+1, P), so the stacks are read once each
        way per step, whatever K (measured: see benchmarks/README.md).
        """
        shared = coefficients.dim() == 2
        self.check_coefficients(coefficients)
        if not shared and coefficients.shape[0] != len(batches):
            raise ValueError(f"{coefficients.shape[0]} coefficient sets for {len(batches)} batches.")
        sets = coefficients.unsqueeze(0) if shared else coefficients
        # unbind, not indexing: autograd then gathers the K gradients into one (K, P) tensor, where
        # K separate selects would each allocate a zero-filled (K, P) gradient
        merged = {n: self._merge(n, sets[:, :, self.layer_index[n]]).unbind(0) for n in self._changed}
        return [
            functional_call(self.model, {n: w[0 if shared else k] for n, w in merged.items()}, args=(), kwargs=inputs)
            for k, inputs in enumerate(batches)
        ]

    # ---- exact per-sample merging ------------------------------------------------------------------
    @contextmanager
    def _per_sample(self, coefficients: torch.Tensor) -> Iterator[None]:
        patched: list[nn.Module] = []
        rows = SampleRows()
        # θ0's 1 appended to every tensor's coefficients at once, laid out (L, B, T + 1) so each tensor's are contiguous
        batch, _, layers = coefficients.shape
        extended = torch.cat([coefficients, coefficients.new_ones(batch, 1, layers)], dim=1).permute(2, 0, 1).contiguous()
        ready = {}
        cast = self._stacks_under_autocast()
        for key, names in self._buckets.items():  # every merged vector of one length: one batched product
            vectors = cast.get(key, getattr(self, key))
            built = torch.bmm(extended[getattr(self, f"{key}__layers")].to(vectors.dtype), vectors)  # (K, B, n)
            ready.update(zip(names, built.unbind(0)))
        # by identity, so a weight shared by several modules (tied embeddings) is merged in each of them
        changed = set(self._changed)
        name_of = {id(p): n for n, p in self.model.named_parameters(remove_duplicate=False) if n in changed}
        try:
            for module in self.model.modules():
                own = {local: name_of.get(id(p)) for local, p in module.named_parameters(recurse=False)}
                merged = {local: full for local, full in own.items() if full is not None}
                if not merged:
                    continue
                coefs = {local: coefficients[:, :, self.layer_index[full]] for local, full in merged.items()}
                taus = {local: cast.get(full, self.updates(full)) for local, full in merged.items()}
                ext = {local: extended[self.layer_index[full]] for local, full in merged.items()}
                built_here = {local: ready[full] for local, full in merged.items() if full in ready}
                module.forward = per_sample_forward(module, taus, coefs, rows, self._workspace, ext, built_here)
                patched.append(module)
            yield
        finally:
            for module in patched:
                del module.forward  # drop the instance attribute: the class's forward is back
