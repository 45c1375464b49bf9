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
* Embedding: only the looked-up rows are mixed (gather, then a T-term weighted sum): the 30k-row
  vocabulary matrix is never copied.
* LayerNorm: normalise without affine, then apply per-sample scale and shift.
* Any other module with its own merged tensors: a loop over samples with `functional_call` on that
  module alone (inputs must be batch-first). Exact but slow; only small modules should land here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F


def _mix(stack: torch.Tensor, coef: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """θ0 + Σ_t coef[..., t] τ_t from `stack` = [τ_1; …; τ_T; θ0]; coef (T,) → θ0.shape, (B, T) → (B, *θ0.shape).

    θ0 sits in the stack's last row so one matrix product with the coefficients extended by a 1 gives
    the merged tensors, written once into `out` when given: building per-sample weights is bound by
    memory traffic, not arithmetic. Measured on CPU, a fresh multi-MB tensor per layer cost more in
    page faults, and broadcasting θ0 into it more in copying, than the product itself.
    """
    ones = coef.new_ones(*coef.shape[:-1], 1)
    extended = torch.cat([coef, ones], dim=-1).to(stack.dtype)
    shape = stack.shape[1:]
    if coef.dim() == 1:
        return torch.tensordot(extended, stack, dims=1)
    flat = (coef.shape[0], stack[0].numel())
    target = None if out is None else out[: flat[0] * flat[1]].view(flat)
    return torch.mm(extended, stack.flatten(1), out=target).view(coef.shape[0], *shape)


_BLOCK_BYTES = 32 * 2**20  # per-sample Linear weights built per block of output rows, at most this size


class _Workspace:
    """One reusable buffer for the per-sample weights of the layer being run.

    Only without autograd (evaluation): each layer consumes its weights before the next layer
    overwrites them, whereas autograd would keep every layer's weights for the backward pass.
    The buffer lives on the merger, so later batches reuse memory that is already mapped.
    """

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None

    def get(self, numel: int, like: torch.Tensor) -> torch.Tensor | None:
        if torch.is_grad_enabled():
            return None
        if self.buffer is None or self.buffer.numel() < numel or self.buffer.dtype != like.dtype or self.buffer.device != like.device:
            self.buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        return self.buffer


def _batch_view(per_sample: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, d) → (B, 1, ..., 1, d) so it broadcasts against x of shape (B, ..., d)."""
    return per_sample.view(per_sample.shape[0], *([1] * (x.dim() - 2)), per_sample.shape[-1])


class TaskVectorMerger(nn.Module):
    """A frozen model plus stacked task vectors, evaluated under given merging coefficients.

    Args:
        model: the pretrained model (θ_0); it is frozen and never modified.
        task_vectors: name → (T, *shape) stacked task vectors, names as in `model.named_parameters()`.
            Their order defines the layer index used by layer-wise coefficients.
    """

    def __init__(self, model: nn.Module, task_vectors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        params = dict(model.named_parameters())
        unknown = [n for n in task_vectors if n not in params]
        if unknown:
            raise KeyError(f"Task vectors for tensors the model does not have: {unknown[:5]}")
        self.names = list(task_vectors)
        self.layer_index = {n: i for i, n in enumerate(self.names)}
        counts = {tv.shape[0] for tv in task_vectors.values()}
        if len(counts) != 1:
            raise ValueError(f"Every tensor needs the same number of task vectors, got {sorted(counts)}.")
        self.num_tasks = counts.pop()
        self._workspace = _Workspace()
        for name, tv in task_vectors.items():
            if tv.shape[1:] != params[name].shape:
                raise ValueError(f"Task vector '{name}' has shape {tuple(tv.shape[1:])}, tensor has {tuple(params[name].shape)}.")
            theta0 = params[name].detach()
            stack = torch.cat([tv.detach().to(theta0.dtype), theta0.unsqueeze(0)])  # [τ_1; …; τ_T; θ0]
            self.register_buffer(self._key(name), stack, persistent=False)
        self._link_parameters()

    def _link_parameters(self) -> None:
        """Make each merged parameter of the model a view of its stack's θ0 row.

        θ0 is then stored once (not once in the model and once in the stack), and the model's
        parameters keep their values. Device and dtype moves convert buffers and parameters
        separately, so `_apply` links them again afterwards.
        """
        for name, param in self.model.named_parameters():
            if name in self.layer_index:
                row = self.stack(name)[-1]
                if param.data_ptr() != row.data_ptr():
                    param.data = row

    def _apply(self, fn, recurse: bool = True):
        out = super()._apply(fn, recurse)
        self._link_parameters()
        return out

    @staticmethod
    def _key(name: str) -> str:
        return "tau__" + name.replace(".", "__")

    def stack(self, name: str) -> torch.Tensor:
        """(T + 1, *shape): the T task vectors of tensor `name`, then θ0."""
        return getattr(self, self._key(name))

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
        """θ_0 + Σ_t c[t, l] τ_t for every merged tensor l (coefficients (T, L))."""
        return {n: _mix(self.stack(n), coefficients[:, self.layer_index[n]]) for n in self.names}

    def forward(self, inputs: dict[str, torch.Tensor], coefficients: torch.Tensor) -> torch.Tensor:
        self.check_coefficients(coefficients)
        if coefficients.dim() == 2:
            return functional_call(self.model, self.merged_parameters(coefficients), args=(), kwargs=inputs)
        with self._per_sample(coefficients):
            return self.model(**inputs)

    # ---- exact per-sample merging ------------------------------------------------------------------
    @contextmanager
    def _per_sample(self, coefficients: torch.Tensor) -> Iterator[None]:
        patched: list[nn.Module] = []
        rows = _SampleRows()
        # by identity, so a weight shared by several modules (tied embeddings) is merged in each of them
        name_of = {id(p): n for n, p in self.model.named_parameters(remove_duplicate=False) if n in self.layer_index}
        try:
            for module in self.model.modules():
                own = {local: name_of.get(id(p)) for local, p in module.named_parameters(recurse=False)}
                merged = {local: full for local, full in own.items() if full is not None}
                if not merged:
                    continue
                coefs = {local: coefficients[:, :, self.layer_index[full]] for local, full in merged.items()}
                taus = {local: self.stack(full) for local, full in merged.items()}
                module.forward = _per_sample_forward(module, taus, coefs, rows, self._workspace)
                patched.append(module)
            yield
        finally:
            for module in patched:
                del module.forward  # drop the instance attribute: the class's forward is back


class _SampleRows:
    """Which samples the patched modules currently see: all, or one while the fallback loop runs."""

    def __init__(self) -> None:
        self.rows: slice | None = None

    def __call__(self, coef: torch.Tensor) -> torch.Tensor:
        return coef if self.rows is None else coef[self.rows]


def _per_sample_forward(
    module: nn.Module, taus: dict[str, torch.Tensor], all_coefs: dict[str, torch.Tensor], rows: _SampleRows, workspace: _Workspace
) -> Callable:
    def coef(local: str) -> torch.Tensor:
        return rows(all_coefs[local])

    def batch_size() -> int:
        return rows(next(iter(all_coefs.values()))).shape[0]

    def weight(local: str) -> torch.Tensor | None:
        base = getattr(module, local)
        if base is None:
            return None
        if local not in taus:  # not merged: same tensor for every sample
            return base.unsqueeze(0).expand(batch_size(), *base.shape)
        out = workspace.get(batch_size() * base.numel(), base) if local == "weight" else None
        return _mix(taus[local], coef(local), out)

    if type(module) is nn.Linear:

        def apply(flat: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            wt = w.transpose(1, 2)
            return torch.bmm(flat, wt) if b is None else torch.baddbmm(b.unsqueeze(1), flat, wt)

        def linear(x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(x.shape[0], -1, x.shape[-1])
            out_features, in_features = module.weight.shape
            b = weight("bias")
            if "weight" not in taus:
                return apply(flat, weight("weight"), b).view(*x.shape[:-1], out_features)
            # Built and applied a block of output rows at a time: each block's per-sample weights are
            # read back while still in cache instead of making a round trip through main memory
            # (measured: ~13 % faster for ViT-B/32's MLP on CPU, and a bounded workspace).
            stack, c = taus["weight"], coef("weight")
            rows = max(1, _BLOCK_BYTES // (c.shape[0] * in_features * stack.element_size()))
            outs = []
            for r0 in range(0, out_features, rows):
                r1 = min(out_features, r0 + rows)
                w = _mix(stack[:, r0:r1], c, workspace.get(c.shape[0] * (r1 - r0) * in_features, stack))
                outs.append(apply(flat, w, None if b is None else b[:, r0:r1]))
            out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
            return out.view(*x.shape[:-1], out_features)

        return linear
    if type(module) is nn.Embedding:

        def embedding(ids: torch.Tensor) -> torch.Tensor:
            batch = batch_size()
            if ids.shape[0] not in (1, batch):
                raise NotImplementedError(
                    f"Per-sample merging of {type(module).__name__} needs batch-first indices, got shape {tuple(ids.shape)} "
                    f"for {batch} samples (e.g. T5's relative attention bias). Leave this tensor out of the merged set."
                )
            ids = ids.expand(batch, *ids.shape[1:]) if ids.shape[0] == 1 else ids
            out = F.embedding(ids, module.weight, module.padding_idx)
            if "weight" in taus:
                picked = taus["weight"][:-1, ids]  # (T, B, ..., d): task-vector rows only
                out = out + torch.einsum("bt,tb...->b...", coef("weight").to(picked.dtype), picked)
            return out

        return embedding
    if type(module) is nn.LayerNorm:

        def layer_norm(x: torch.Tensor) -> torch.Tensor:
            out = F.layer_norm(x, module.normalized_shape, None, None, module.eps)
            w, b = weight("weight"), weight("bias")
            if w is not None:
                out = out * _batch_view(w, x)
            if b is not None:
                out = out + _batch_view(b, x)
            return out

        return layer_norm
    if type(module) is nn.Conv2d and module.padding_mode == "zeros":

        def conv2d(x: torch.Tensor) -> torch.Tensor:
            w = weight("weight")  # (B, O, I/g, k, k)
            batch, groups = w.shape[0], module.groups
            b = weight("bias")
            out = F.conv2d(
                x.reshape(1, -1, *x.shape[2:]),
                w.reshape(-1, *w.shape[2:]),
                None if b is None else b.reshape(-1),
                module.stride,
                module.padding,
                module.dilation,
                groups * batch,
            )
            return out.view(batch, -1, *out.shape[2:])

        return conv2d
    return _sample_loop_forward(module, taus, all_coefs, rows)


def _sample_loop_forward(
    module: nn.Module, taus: dict[str, torch.Tensor], all_coefs: dict[str, torch.Tensor], rows: _SampleRows
) -> Callable:
    """Fallback for modules without a batched per-sample rule: one call per sample.

    While sample b runs, `rows` narrows every patched child module to sample b's coefficients.
    """
    cls_forward = type(module).forward

    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        outer, outputs = rows.rows, []
        start = 0 if outer is None else outer.start
        try:
            for i in range(x.shape[0]):
                rows.rows = slice(start + i, start + i + 1)
                params = {local: _mix(taus[local], all_coefs[local][start + i]) for local in taus}
                outputs.append(_call_with(module, cls_forward, params, x[i : i + 1], args, kwargs))
        finally:
            rows.rows = outer
        return torch.cat(outputs)

    return forward


def _call_with(module: nn.Module, cls_forward: Callable, params: dict, x: torch.Tensor, args: tuple, kwargs: dict):
    """Call the class forward with some direct parameters swapped (the instance forward is patched)."""
    saved = {k: module._parameters[k] for k in params}
    try:
        for k, v in params.items():
            module._parameters.pop(k)
            setattr(module, k, v)
        return cls_forward(module, x, *args, **kwargs)
    finally:
        for k, v in saved.items():
            delattr(module, k)
            module._parameters[k] = v
