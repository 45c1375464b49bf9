"""Per-sample forwards of single layers: each sample runs under its own merged weights, batched.

`TaskVectorMerger` patches these onto the model's leaf modules for one call; see its module docstring
for the cost argument. Kept apart from the merger so each file has one job: this one is the tensor
code of the layers, that one the bookkeeping of which tensor gets which coefficients.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from dawe_merge.merging.low_precision import LowPrecisionStack
from dawe_merge.merging.low_rank import FactorStack
from dawe_merge.per_sample.linear import device_balance, stacked_inputs_cheaper, stacked_inputs_linear

Stack = torch.Tensor | LowPrecisionStack  # [τ_1; …; τ_T; θ0] in one dtype, or bf16 τ beside θ0

# Module classes whose own forward runs a whole batch when some of its direct parameters are given per sample, in a
# form its broadcasting keeps apart: class → {parameter: view of the (B, *shape) per-sample tensor}. A family
# registers its models' such modules (the vision family: CLIP's class token); any other module holding merged
# tensors of its own falls back to one call per sample.
BATCHED_PARAMETERS: dict[type, dict[str, Callable[[torch.Tensor], torch.Tensor]]] = {}


def register_batched_parameters(module_type: type, **views: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Declare that `module_type`'s forward, given parameter p as views[p]((B, *p.shape) tensor), runs each sample
    under its own p in one call. Exactness is the registrant's claim: test it against the per-sample loop."""
    BATCHED_PARAMETERS[module_type] = views


def mix(stack: Stack, coef: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """θ0 + Σ_t coef[..., t] τ_t from `stack` = [τ_1; …; τ_T; θ0]; coef (T,) → θ0.shape, (B, T) → (B, *θ0.shape).

    θ0 sits in the stack's last row so one matrix product with the coefficients extended by a 1 gives
    the merged tensors, written once into `out` when given: building per-sample weights is bound by
    memory traffic, not arithmetic. Measured on CPU, a fresh multi-MB tensor per layer cost more in
    page faults, and broadcasting θ0 into it more in copying, than the product itself.
    """
    if isinstance(stack, LowPrecisionStack):
        return stack.mix(coef, out)
    extended = torch.cat([coef, coef.new_ones(*coef.shape[:-1], 1)], dim=-1)
    if coef.dim() == 1:
        return torch.tensordot(extended.to(stack.dtype), stack, dims=1)
    return mix_extended(stack, extended, out)


def mix_extended(stack: torch.Tensor, extended: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """`mix` from coefficients already extended by the 1 of θ0, (B, T + 1) → (B, *θ0.shape): one product.

    A per-sample forward extends every tensor's coefficients in one operation beforehand, so building a
    tensor's per-sample weights is this product alone (on a GPU each operation is a kernel launch).
    """
    flat = (extended.shape[0], stack[0].numel())
    target = None if out is None else out[: flat[0] * flat[1]].view(flat)
    return torch.mm(extended.to(stack.dtype), stack.flatten(1), out=target).view(extended.shape[0], *stack.shape[1:])


def mix_factored(factors: FactorStack, coef: torch.Tensor) -> torch.Tensor:
    """Σ_t coef[..., t] B_t A_t as dense weights: coef (T,) → (out, in), (K, T) → (K, out, in).

    Used for merges shared by a whole batch (one dense weight per merge, as for dense task vectors).
    """
    weights = coef.reshape(-1, factors.tasks).repeat_interleave(factors.rank, dim=1).to(factors.B.dtype)  # (K, T·r)
    out = (factors.B.unsqueeze(0) * weights.unsqueeze(1)) @ factors.A
    return out if coef.dim() > 1 else out[0]


def low_rank_per_sample(x: torch.Tensor, factors: FactorStack, coef: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """base + Σ_t coef[b, t] B_t (A_t x_b) for x (B, ..., in), coef (B, T), base (B, ..., out): exact, no per-sample weight.

    Three operations whatever T: the projection on every A_t at once, its scaling by each sample's coefficients
    (broadcast over the rank, not repeated into a tensor), and one product with every B_t that adds onto `base`.
    """
    batch, rank = x.shape[0], factors.rank
    projected = (x.reshape(-1, x.shape[-1]) @ factors.A.t()).view(batch, -1, factors.tasks, rank)  # (B, N, T, r)
    scaled = (projected * coef.view(batch, 1, factors.tasks, 1).to(projected.dtype)).view(-1, factors.tasks * rank)
    return torch.addmm(base.reshape(-1, base.shape[-1]), scaled, factors.B.t()).view(base.shape)


# Per-sample Linear weights are built for all output rows at once up to this size, in row blocks above it.
# Blocks only bound the workspace: small blocks measured slower on CPU (skinny batched products and a
# concatenation cost more than the cache reuse gains; benchmarks/README.md), so typical batches use one block.
_BLOCK_BYTES = 512 * 2**20


class Workspace:
    """One reusable buffer for the per-sample weights of the layer being run.

    Only without autograd (evaluation): each layer consumes its weights before the next layer
    overwrites them, whereas autograd would keep every layer's weights for the backward pass.
    The buffer lives on the merger, so later batches reuse memory that is already mapped.
    Not under autocast either: a product written into a given tensor keeps that tensor's precision, so the
    per-sample weights would be built in fp32 and cast again by the next product; without one, the
    product that builds them returns the autocast precision (bf16: half the bytes to write and read).
    """

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None

    def get(self, numel: int, like: torch.Tensor) -> torch.Tensor | None:
        if torch.is_grad_enabled() or torch.is_autocast_enabled(like.device.type):
            return None
        if like.is_cuda and torch.cuda.is_current_stream_capturing():
            return None  # a CUDA graph keeps the addresses it captured: its own memory pool, not a buffer that may move
        if self.buffer is None or self.buffer.numel() < numel or self.buffer.dtype != like.dtype or self.buffer.device != like.device:
            self.buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        return self.buffer


def _batch_view(per_sample: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, d) → (B, 1, ..., 1, d) so it broadcasts against x of shape (B, ..., d)."""
    return per_sample.view(per_sample.shape[0], *([1] * (x.dim() - 2)), per_sample.shape[-1])


class SampleRows:
    """Which samples the patched modules currently see: all, or one while the fallback loop runs."""

    def __init__(self) -> None:
        self.rows: slice | None = None

    def __call__(self, coef: torch.Tensor) -> torch.Tensor:
        return coef if self.rows is None else coef[self.rows]


def per_sample_forward(
    module: nn.Module,
    taus: dict[str, torch.Tensor],
    all_coefs: dict[str, torch.Tensor],
    rows: SampleRows,
    workspace: Workspace,
    extended: dict[str, torch.Tensor] | None = None,
    ready: dict[str, torch.Tensor] | None = None,
) -> Callable:
    """The module's forward with per-sample merged tensors.

    all_coefs: local name → (B, T) coefficients; extended: local name → the same with θ0's 1 appended,
    (B, T + 1), for dense stacks; ready: local name → (B, *shape) per-sample tensors built beforehand (the
    merger builds every small vector of one length in one product).
    """
    extended, ready = extended or {}, ready or {}

    def coef(local: str) -> torch.Tensor:
        return rows(all_coefs[local])

    def batch_size() -> int:
        return rows(next(iter(all_coefs.values()))).shape[0]

    whole_batch: dict[str, torch.Tensor] = {}

    def build(stack: Stack, local: str, out: torch.Tensor | None) -> torch.Tensor:
        if local in extended and not isinstance(stack, LowPrecisionStack):
            return mix_extended(stack, rows(extended[local]), out)
        return mix(stack, coef(local), out)

    def weight(local: str, scratch: bool = True) -> torch.Tensor | None:
        """Per-sample `local`, (B, *shape); scratch: a weight may be built in the shared workspace."""
        base = getattr(module, local)
        if base is None:
            return None
        if local not in taus:  # not merged: same tensor for every sample
            return base.unsqueeze(0).expand(batch_size(), *base.shape)
        if local in ready:
            return rows(ready[local])
        if rows.rows is not None:
            # inside a parent's per-sample loop (a module with merged tensors of its own that no family
            # registered as batched): every sample's
            # tensor is built in one pass over the stack and sliced, instead of one pass per sample
            if local not in whole_batch:
                whole_batch[local] = mix(taus[local], all_coefs[local])
            return whole_batch[local][rows.rows]
        out = workspace.get(batch_size() * base.numel(), base) if local == "weight" and scratch else None
        return build(taus[local], local, out)

    if type(module) is nn.Linear:

        def apply(flat: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            wt = w.transpose(1, 2)
            return torch.bmm(flat, wt) if b is None else torch.baddbmm(b.unsqueeze(1), flat, wt)

        def linear(x: torch.Tensor) -> torch.Tensor:
            if isinstance(taus.get("weight"), FactorStack):
                bias = weight("bias") if "bias" in taus else None
                base = F.linear(x, module.weight, None if "bias" in taus else module.bias)
                if bias is not None:
                    base = base + _batch_view(bias, x)
                return low_rank_per_sample(x, taus["weight"], coef("weight"), base)
            flat = x.reshape(x.shape[0], -1, x.shape[-1])
            out_features, in_features = module.weight.shape
            b = weight("bias")
            if "weight" not in taus or rows.rows is not None:
                return apply(flat, weight("weight"), b).view(*x.shape[:-1], out_features)
            stack, c = taus["weight"], coef("weight")
            if not isinstance(stack, LowPrecisionStack) and "weight" in extended:
                dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else stack.dtype
                if stacked_inputs_cheaper(*flat.shape[:2], c.shape[1], in_features, out_features, dtype.itemsize, device_balance(x.device, dtype)):
                    out = stacked_inputs_linear(flat, stack, rows(extended["weight"]))
                    return (out if b is None else out + b.unsqueeze(1)).view(*x.shape[:-1], out_features)
            block = max(1, _BLOCK_BYTES // (c.shape[0] * in_features * stack.element_size()))
            if block >= out_features:
                return apply(flat, weight("weight"), b).view(*x.shape[:-1], out_features)
            outs = []  # a batch too large for one workspace: blocks of output rows
            for r0 in range(0, out_features, block):
                r1 = min(out_features, r0 + block)
                rows_of = stack.rows(r0, r1) if isinstance(stack, LowPrecisionStack) else stack[:, r0:r1]
                w = build(rows_of, "weight", workspace.get(c.shape[0] * (r1 - r0) * in_features, stack))
                outs.append(apply(flat, w, None if b is None else b[:, r0:r1]))
            return torch.cat(outs, dim=-1).view(*x.shape[:-1], out_features)

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
                stack = taus["weight"]
                picked = stack.tau[:, ids] if isinstance(stack, LowPrecisionStack) else stack[:-1, ids]  # (T, B, ..., d): task vectors' rows
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

        patches = module.groups == 1 and module.stride == module.kernel_size and module.dilation == (1, 1) and module.padding in ((0, 0), "valid")

        def conv2d(x: torch.Tensor) -> torch.Tensor:
            w = weight("weight")  # (B, O, I/g, k, k)
            batch, groups = w.shape[0], module.groups
            b = weight("bias")
            if patches:  # non-overlapping patches (a ViT's patch embedding): one batched product over the unfolded patches
                unfolded = F.unfold(x, module.kernel_size, stride=module.stride)  # (B, I·k·k, L), in the weight's (I, k, k) order
                flat = w.flatten(2)
                out = torch.bmm(flat, unfolded) if b is None else torch.baddbmm(b.unsqueeze(-1), flat, unfolded)
                size = [(x.shape[2 + i] - module.kernel_size[i]) // module.stride[i] + 1 for i in range(2)]
                return out.view(batch, -1, *size)
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
    views = BATCHED_PARAMETERS.get(type(module), {})
    if set(taus) <= set(views):
        cls_forward = type(module).forward

        def batched(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
            # outside the workspace: the children this forward calls reuse it
            params = {local: views[local](weight(local, scratch=False)) for local in taus}
            return _call_with(module, cls_forward, params, x, args, kwargs)

        return batched
    return _sample_loop_forward(module, taus, all_coefs, rows)


def _sample_loop_forward(
    module: nn.Module, taus: dict[str, torch.Tensor], all_coefs: dict[str, torch.Tensor], rows: SampleRows
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
                params = {local: mix(taus[local], all_coefs[local][start + i]) for local in taus}
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
