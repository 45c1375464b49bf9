"""The two exact per-sample paths of a dense Linear layer, timed against each other, and the cost rule checked.

`dawe_merge/per_sample/linear.py` picks, per layer and batch, between building per-sample weights and the
stacked-inputs product by a roofline rule whose one constant is the device's balance (FLOPs per byte). This
script measures that balance (a large matrix product against a large copy, in the precision given) and times
both paths on the layer shapes of the benchmark models (ViT-B/32 / T5-base 768↔3072, MiniLM 384↔1536) at
several tokens per sample, then says for how many cases the rule picked the faster path, and how much time
its wrong picks cost.

    python benchmarks/linear_paths.py                      # CPU, fp32
    python benchmarks/linear_paths.py --device cuda --dtype bf16 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from dawe_merge.per_sample.linear import FLOPS_PER_BYTE, device_balance, stacked_inputs_cheaper, stacked_inputs_linear

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SHAPES = [(768, 768), (768, 3072), (3072, 768), (384, 384), (384, 1536), (1536, 384)]  # (in, out)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def balance(device: torch.device, dtype: torch.dtype, repeats: int) -> dict:
    """FLOP/s of a large matrix product, bytes/s of a large copy (read + write), and their ratio."""
    n = 4096 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    flops = 2 * n**3 / timed(lambda: a @ b, device, repeats)
    numel = (2**28 if device.type == "cuda" else 2**25) // a.element_size()
    src, dst = torch.randn(numel, device=device, dtype=dtype), torch.empty(numel, device=device, dtype=dtype)
    bandwidth = 2 * numel * a.element_size() / timed(lambda: dst.copy_(src), device, repeats)
    return {"flops_per_s": flops, "bytes_per_s": bandwidth, "flops_per_byte": flops / bandwidth}


def build_path(flat: torch.Tensor, stack: torch.Tensor, extended: torch.Tensor, workspace: torch.Tensor) -> torch.Tensor:
    """Per-sample weights written once into a reused buffer (one product), then one batched product: the merger's
    build path (`per_sample_layers.Workspace`)."""
    weights = torch.mm(extended, stack.flatten(1), out=workspace[: extended.shape[0] * stack[0].numel()].view(extended.shape[0], -1))
    return torch.bmm(flat, weights.view(extended.shape[0], *stack.shape[1:]).transpose(1, 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 4, 16, 50, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is available.", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    measured = balance(device, dtype, args.repeats)
    rule = device_balance(device, dtype)
    print(f"{device} {args.dtype}: {measured['flops_per_s'] / 1e12:.2f} TFLOP/s, {measured['bytes_per_s'] / 1e9:.0f} GB/s, "
          f"balance {measured['flops_per_byte']:.1f} FLOP/byte (the rule uses {rule}; FLOPS_PER_BYTE = {FLOPS_PER_BYTE})")  # fmt: skip
    rows, right, lost, worst = [], 0, 0.0, 0.0
    workspace = torch.empty(max(args.batch_sizes) * max(i * o for i, o in SHAPES), device=device, dtype=dtype)
    print(f"{'in':>5}{'out':>6}{'B':>4}{'N':>5}{'build ms':>10}{'stacked ms':>12}{'rule':>9}{'faster':>9}{'max rel diff':>14}")
    for in_f, out_f in SHAPES:
        stack = 0.02 * torch.randn(args.tasks + 1, out_f, in_f, device=device, dtype=dtype)
        for batch in args.batch_sizes:
            extended = torch.cat([0.3 + 0.1 * torch.randn(batch, args.tasks), torch.ones(batch, 1)], 1).to(device, dtype)
            for tokens in args.tokens:
                flat = torch.randn(batch, tokens, in_f, device=device, dtype=dtype)
                with torch.inference_mode():
                    t_build = timed(lambda: build_path(flat, stack, extended, workspace), device, args.repeats)
                    t_stacked = timed(lambda: stacked_inputs_linear(flat, stack, extended), device, args.repeats)
                    a = build_path(flat, stack, extended, workspace).float()
                    diff = ((stacked_inputs_linear(flat, stack, extended).float() - a).abs().max() / a.abs().max()).item()
                picks_stacked = stacked_inputs_cheaper(batch, tokens, args.tasks, in_f, out_f, stack.element_size(), rule)
                faster_stacked = t_stacked < t_build
                right += picks_stacked == faster_stacked
                penalty = (t_stacked if picks_stacked else t_build) - min(t_build, t_stacked)
                lost += penalty
                worst = max(worst, penalty / min(t_build, t_stacked))
                names = ("stacked" if picks_stacked else "build", "stacked" if faster_stacked else "build")
                print(f"{in_f:>5}{out_f:>6}{batch:>4}{tokens:>5}{t_build * 1e3:>10.3f}{t_stacked * 1e3:>12.3f}{names[0]:>9}{names[1]:>9}{diff:>14.1e}")
                rows.append({"in": in_f, "out": out_f, "batch": batch, "tokens": tokens, "build_s": t_build, "stacked_s": t_stacked,
                             "rule_picks_stacked": picks_stacked, "max_rel_diff": diff})  # fmt: skip
    total = sum(min(r["build_s"], r["stacked_s"]) for r in rows)
    print(f"\nthe rule picked the faster path in {right} of {len(rows)} cases; its wrong picks cost {lost * 1e3:.2f} ms "
          f"over the best choice's {total * 1e3:.2f} ms in all ({lost / total:.1%}), at most {worst:.0%} on one case")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {"right": right, "cases": len(rows), "lost_s": lost, "best_s": total, "worst_relative": worst}
        args.json.write_text(json.dumps({"device": str(device), "dtype": args.dtype, "balance": measured, "rule_balance": rule,
                                         "cases": rows, "summary": summary}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
