"""Two exact ways to run a dense Linear layer with per-sample merged weights, and the rule that picks one.

For sample b with extended coefficients e_b = (c_b1, …, c_bT, 1) over the stack S = [τ_1; …; τ_T; θ0]:

* **build**: W_b = Σ_k e_bk S_k written for every sample (one product), then one batched product with the
  inputs. Cost: B·(T+1)·P multiply-adds to build plus B·N·P to apply, and B per-sample weights of P
  entries written and read again (P = in·out, N tokens per sample).
* **stacked inputs**: y_b = Σ_k (e_bk x_b) S_kᵀ, the inputs scaled per task against the stacked weights.
  No weight is written; (T+1)·B·N·P multiply-adds, and intermediates of (T+1)·B·N·(in + out) entries.

Building wins on a long input (N ≫ T), stacking on short ones (N = 1: a decoder's first step, a pooled
vector), and where the crossover lies depends on how many FLOPs the device does in the time it moves one
byte: `FLOPS_PER_BYTE`, measured for each device and precision with `benchmarks/linear_paths.py` (its
results are in benchmarks/README.md). The rule compares the two roofline times; both paths agree with the
reference to float rounding, so the choice changes speed, not results beyond the last bits.
"""
from __future__ import annotations

import torch

# FLOPs per byte of memory traffic at which arithmetic and memory take equal time: the device's balance,
# rounded from the matrix-product rate and the copy bandwidth `benchmarks/linear_paths.py --balance` measures.
# "cuda_tensor_cores": bf16/fp16 products, or fp32 ones in TF32 (`torch.set_float32_matmul_precision("high")`).
FLOPS_PER_BYTE = {"cpu": 8.0, "cuda": 12.0, "cuda_tensor_cores": 100.0}


def device_balance(device: torch.device, dtype: torch.dtype) -> float:
    """The balance of the products this layer will run: its device, and whether tensor cores take them."""
    if device.type != "cuda":
        return FLOPS_PER_BYTE["cpu"]
    tensor_cores = dtype in (torch.bfloat16, torch.float16) or (dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest")
    return FLOPS_PER_BYTE["cuda_tensor_cores" if tensor_cores else "cuda"]


def stacked_inputs_cheaper(batch: int, tokens: int, tasks: int, in_features: int, out_features: int, element_size: int, flops_per_byte: float) -> bool:
    """Whether the stacked-inputs path's roofline time is below the build path's (`tasks` = T, without θ0)."""
    k, params = tasks + 1, in_features * out_features
    stack_read = k * params * element_size  # both paths read the whole stack once
    build = (2 * batch * k * params + 2 * batch * tokens * params) / flops_per_byte + stack_read + 2 * batch * params * element_size
    stacked = 2 * k * batch * tokens * params / flops_per_byte + stack_read + 2 * k * batch * tokens * (in_features + out_features) * element_size
    return stacked < build


def stacked_inputs_linear(flat: torch.Tensor, stack: torch.Tensor, extended: torch.Tensor) -> torch.Tensor:
    """Σ_k extended[b, k] · flat[b] S_kᵀ for flat (B, N, in), stack (T+1, out, in), extended (B, T+1) → (B, N, out).

    One batched product over the T+1 weights, each meeting all B·N inputs scaled by their sample's
    coefficient, then a sum over k: the stack is read once and nothing of weight size is written.
    """
    batch, tokens, _ = flat.shape
    scaled = extended.t().to(flat.dtype)[:, :, None, None] * flat.unsqueeze(0)  # (T+1, B, N, in)
    per_weight = torch.bmm(scaled.flatten(1, 2), stack.transpose(1, 2))  # (T+1, B·N, out)
    return per_weight.sum(0).view(batch, tokens, stack.shape[1])
