"""Close calls of low-precision class logits: the rows whose decision bf16 cannot be trusted to make.

Under bf16 autocast the head writes its logits in bf16, whose spacing at a logit of 8 is 1/16: two
classes within a few spacings of each other are tied or ordered by rounding, not by the model. Those
rows (and only those) are decided again in fp32, so a bf16 evaluation keeps its speed on the rest and
fp32's decisions where they hang on the last bits. The margin is counted in spacings ("ulps") of the
dtype at the larger magnitude of the two top logits, which makes one threshold fit every family's logit scale.
The default was measured for bf16; fp16's spacing is 8× finer, so the same count is a narrower margin there.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric

LOW_PRECISION = (torch.bfloat16, torch.float16)
# the default threshold: above it no validation decision of the offline benchmarks' measured methods changed (docs/cli.md)
CLOSE_CALL_ULPS = 16.0
# upper edges of the margin buckets the counts keep, in ulps; a last bucket holds everything wider
ULP_EDGES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def margin_in_ulps(logits: object) -> torch.Tensor | None:
    """(B,) top-1 minus top-2 logit in units of the dtype's spacing there; None for anything but low-precision
    (B, C ≥ 2) class logits (fp32 logits, generated answers, regression numbers need no second look)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] < 2 or logits.dtype not in LOW_PRECISION:
        return None
    top = logits.float().topk(2, dim=1).values
    magnitude = top.abs().amax(1)
    spacing = torch.finfo(logits.dtype).eps * torch.exp2(torch.floor(torch.log2(magnitude)))
    spacing = torch.where(magnitude > 0, spacing, torch.ones_like(spacing))  # two zero logits: a tie, 0 ulps
    return (top[:, 0] - top[:, 1]) / spacing


def select_rows(batch: dict, rows: torch.Tensor) -> dict:
    """The sub-batch of `rows`: per-example tensors and lists indexed, anything else (options) kept."""
    size = _batch_size(batch)
    positions = rows.tolist()
    picked = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
            picked[key] = value[rows.to(value.device)]
        elif isinstance(value, (list, tuple)) and len(value) == size:
            picked[key] = [value[i] for i in positions]
        else:
            picked[key] = value
    return picked


def _batch_size(batch: dict) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
        if isinstance(value, (list, tuple)):
            return len(value)
    raise ValueError("a batch without per-example tensors or lists has no rows to select")


def with_rows(logits: torch.Tensor, rows: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """`logits` in fp32 with `rows` replaced by their exact values."""
    out = logits.float().clone()
    out[rows] = exact.float()
    return out


class CloseCallCount(Metric):
    """Per margin bucket (ULP_EDGES): inputs evaluated in low precision, decided again, and decisions that changed.

    A torchmetrics state, so DDP ranks' counts are summed in `compute`. Run with every row decided again
    (an infinite threshold), `changed` by bucket says how far from a tie bf16 ever decides differently.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        buckets = len(ULP_EDGES) + 1
        for name in ("inputs", "rechecked", "changed"):
            self.add_state(name, default=torch.zeros(buckets, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, margins: torch.Tensor, rechecked: torch.Tensor, changed: torch.Tensor) -> None:
        """margins (B,) in ulps; rechecked and changed (B,) booleans."""
        bucket = torch.bucketize(margins.float().cpu(), torch.tensor(ULP_EDGES)).to(self.inputs.device)
        for state, mask in (("inputs", None), ("rechecked", rechecked), ("changed", changed)):
            picked = bucket if mask is None else bucket[mask.to(bucket.device)]
            setattr(self, state, getattr(self, state) + torch.bincount(picked, minlength=len(ULP_EDGES) + 1))

    def compute(self) -> dict[str, list[int]]:
        return {name: getattr(self, name).tolist() for name in ("inputs", "rechecked", "changed")}
