"""Peak memory of one test-time adaptation step at paper scale: CLIP ViT-B/32 and ViT-L/14, T task vectors.

One step = every task's unlabelled batch through its merged model, entropy of a zero-shot-style head,
backward to the task-wise coefficients. Three ways, all through `TaskVectorMerger` as the methods use it:

  before      one backward over all K task batches (`forward_each`, the default): K merged models and K
              batches of activations alive at once
  per-task    `backward_per_task`: one task's merged model and activations alive at a time
  per-task+bf16   the same with the task-vector stack stored in bf16 (`task_vector_dtype: bfloat16`)

Memory that does not depend on the step (θ0 and the T task vectors) is computed from the tensor sizes; the
step's peak *extra* memory is measured (CUDA: allocator peak; CPU: sampled RSS, see peak_memory.py). Where
this machine cannot hold a configuration, measure smaller ones and extrapolate: the extra memory is linear
in the batch size b, and each further task batch alive at once (K) adds its merged weights and activations,

    extra(K, b) = e1(b) + (K − 1) · s(b)        e1, s: lines in b fitted through the measured rows,

so two batch sizes at K = 1 and at a larger K give the estimate; for the per-task variants K does not enter.

    python benchmarks/adaptation_memory.py --model clip-vit-b32 --tasks 8 --batch-sizes 16 --task-batches 1 8
    python benchmarks/adaptation_memory.py --model clip-vit-l14 --tasks 8 --batch-sizes 1 2 --task-batches 1 2 --target-batch 16
    (every variant × task batches × batch size is measured; the extrapolation needs two batch sizes at K = 1)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dawe_merge.methods.objectives import softmax_entropy
from dawe_merge.per_sample.merged_forward import TaskVectorMerger

if __package__:  # imported as benchmarks.adaptation_memory (the tests, python -m from the root)
    from .peak_memory import PeakMemory
    from .throughput_models import VisionTower
else:  # run by path from any folder: Python puts benchmarks/ first on sys.path; `dawe_merge` comes from `pip install -e .`
    from peak_memory import PeakMemory
    from throughput_models import VisionTower

SIZES = {
    "clip-vit-b32": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=32),
    "clip-vit-l14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224, patch_size=14),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=16),
}
MIB = 2**20


def build(model_name: str, tasks: int, store: torch.dtype, device: torch.device, seed: int = 0) -> TaskVectorMerger:
    from transformers import CLIPVisionConfig

    torch.manual_seed(seed)
    model = VisionTower(CLIPVisionConfig(**SIZES[model_name], hidden_act="quick_gelu"))
    stacks = {n: 1e-3 * torch.randn(tasks, *p.shape, dtype=store) for n, p in model.named_parameters()}
    return TaskVectorMerger(model, stacks, store_dtype=store).to(device)


def _bytes_held(merger: TaskVectorMerger) -> int:
    """θ0 and the task vectors: buffers plus the parameters that are not views into them (counted once)."""
    storages = {b.untyped_storage().data_ptr() for b in merger.buffers()}
    own = [p for p in merger.model.parameters() if p.untyped_storage().data_ptr() not in storages]
    return sum(b.numel() * b.element_size() for b in merger.buffers()) + sum(p.numel() * p.element_size() for p in own)


class SavedForBackward:
    """Bytes autograd saves for backward (unique storages; θ0 and the task vectors excluded), peak over task batches.

    What a step's backward must hold: every merged weight and activation its graph saved. Unlike sampled RSS it
    is exact and deterministic, so it extrapolates cleanly in the batch size and the number of task batches.
    """

    def __init__(self, exclude: set[int]) -> None:
        self.exclude, self.seen, self.current, self.peak = exclude, set(), 0, 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.exclude and storage.data_ptr() not in self.seen:
            self.seen.add(storage.data_ptr())
            self.current += storage.nbytes()
        return tensor

    def next_graph(self) -> None:
        """The previous graph was backpropagated and freed: start counting the next one."""
        self.peak = max(self.peak, self.current)
        self.seen, self.current = set(), 0

    def __enter__(self) -> SavedForBackward:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        self.next_graph()


def step(merger: TaskVectorMerger, head: torch.Tensor, lambdas: torch.Tensor, batches: list[torch.Tensor], per_task: bool,
         saved: SavedForBackward | None = None) -> None:  # fmt: skip
    """One adaptation step's forward and backward (the optimiser update is negligible: T numbers).

    Each task batch gets its own coefficient set, (K, T, L), as DAWE's batch-mean codings do: K merged
    models. (AdaMerging shares one set, so one merged model serves every batch and K matters less.)
    """
    coef = lambdas.unsqueeze(-1).expand(-1, merger.num_layers)
    if per_task:
        for pixels in batches:
            if saved is not None:
                saved.next_graph()
            (out,) = merger.forward_each([{"pixel_values": pixels}], coef.unsqueeze(0))
            softmax_entropy(100 * torch.nn.functional.normalize(out, dim=-1) @ head.T).mean().backward()
        return
    outs = merger.forward_each([{"pixel_values": p} for p in batches], coef.unsqueeze(0).expand(len(batches), -1, -1))
    torch.stack([softmax_entropy(100 * torch.nn.functional.normalize(o, dim=-1) @ head.T).mean() for o in outs]).sum().backward()


def measure(args: argparse.Namespace, variant: str, task_batches: int, batch: int) -> dict:
    device = torch.device(args.device)
    store = torch.bfloat16 if variant.endswith("bf16") else torch.float32
    merger = build(args.model, args.tasks, store, device)
    size = SIZES[args.model]
    head = torch.nn.functional.normalize(torch.randn(10, size["hidden_size"], device=device), dim=-1)
    lambdas = torch.full((args.tasks,), 0.3, device=device, requires_grad=True)
    batches = [torch.randn(batch, 3, size["image_size"], size["image_size"], device=device) for _ in range(task_batches)]
    fixed = _bytes_held(merger)
    step(merger, head, lambdas, [b[:1] for b in batches[:1]], per_task=True)  # warm-up: first-call allocations are not the step's
    lambdas.grad = None
    start = time.perf_counter()
    held = {t.untyped_storage().data_ptr() for t in [*merger.buffers(), *merger.model.parameters()]}
    with PeakMemory(device).measure() as peak, SavedForBackward(held) as saved:
        step(merger, head, lambdas, batches, per_task=variant != "before", saved=saved)
    row = {"variant": variant, "task_batches": task_batches, "batch": batch, "extra_mib": (peak.extra or 0) / MIB,
           "saved_mib": saved.peak / MIB, "fixed_mib": fixed / MIB, "seconds": time.perf_counter() - start}  # fmt: skip
    del merger, batches
    print(f"{variant:<14} K={task_batches:<2} b={batch:<3} fixed {row['fixed_mib']:9.1f} MiB  step extra {row['extra_mib']:9.1f} MiB  "
          f"saved for backward {row['saved_mib']:9.1f} MiB  ({row['seconds']:.1f} s)", flush=True)  # fmt: skip
    return row


def _line(points: list[tuple[float, float]], x: float) -> float:
    """The straight line through the first and last of `points` (sorted by x), evaluated at x."""
    (x1, y1), (x2, y2) = points[0], points[-1]
    return y1 + (x - x1) * (y2 - y1) / (x2 - x1)


def extrapolate(rows: list[dict], variant: str, tasks: int, target_batch: int, figure: str = "extra_mib") -> dict | None:
    """`figure` (measured RSS extra, or bytes saved for backward) at K = `tasks` (before; per-task: any K) and b = `target_batch`.

    e(1, b) is a line in b through the K = 1 rows; each further task batch alive at once adds s(b), a
    line in b through (e(Kmax, b) − e(1, b)) / (Kmax − 1). Needs two batch sizes and, for `before`, two K.
    """
    mine = [r for r in rows if r["variant"] == variant and figure in r]
    sizes = sorted({r["batch"] for r in mine})
    ks = sorted({r["task_batches"] for r in mine})
    if len(sizes) < 2 or 1 not in ks:
        return None
    value = {(r["task_batches"], r["batch"]): r[figure] for r in mine}
    e1 = _line([(b, value[1, b]) for b in sizes], target_batch)
    k_max = ks[-1]
    per_task = _line([(b, (value[k_max, b] - value[1, b]) / (k_max - 1)) for b in sizes], target_batch) if k_max > 1 else None
    if variant == "before":
        if per_task is None:
            return None
        estimate = e1 + (tasks - 1) * per_task
    else:
        estimate = e1  # one task batch alive at a time: K does not enter (the K > 1 rows check it)
    fixed = mine[0]["fixed_mib"]
    return {"variant": variant, "figure": figure, "batch": target_batch, "task_batches": tasks if variant == "before" else 1,
            "extra_mib": estimate, "total_mib": fixed + estimate, "per_extra_task_batch_mib": per_task}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=list(SIZES), default="clip-vit-b32")
    parser.add_argument("--tasks", type=int, default=8, help="task vectors T (the stack's size)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16], help="inputs per task batch to measure")
    parser.add_argument("--task-batches", type=int, nargs="+", default=[1, 8], help="task batches per step to measure (K ≤ T)")
    parser.add_argument("--target-batch", type=int, default=16, help="batch size the extrapolation reports")
    parser.add_argument("--variants", nargs="+", default=["before", "per-task", "per-task+bf16"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="write the measured rows and the estimates here")
    parser.add_argument("--from-json", type=Path, default=None, help="only recompute the estimates from rows saved by --json")
    args = parser.parse_args()
    if args.from_json:
        rows = json.loads(args.from_json.read_text())["rows"]
    else:
        print(f"adaptation step memory: {args.model}, T={args.tasks} task vectors, device {args.device}, torch {torch.__version__}")
        rows = [measure(args, v, k, b) for v in args.variants for k in args.task_batches for b in args.batch_sizes]
    estimates = [e for f in ("extra_mib", "saved_mib") for v in args.variants if (e := extrapolate(rows, v, args.tasks, args.target_batch, f)) is not None]
    for e in estimates:
        what = "step extra (RSS)" if e["figure"] == "extra_mib" else "saved for backward"
        print(f"estimate {e['variant']:<14} K={e['task_batches']} b={e['batch']}: {what} {e['extra_mib']:.0f} MiB, "
              f"total with θ0 and the task vectors {e['total_mib']:.0f} MiB ({e['total_mib'] / 1024:.1f} GiB)")  # fmt: skip
    if args.json and not args.from_json:
        args.json.write_text(json.dumps({"model": args.model, "tasks": args.tasks, "device": args.device, "rows": rows, "extrapolated": estimates}, indent=2))


if __name__ == "__main__":
    main()
