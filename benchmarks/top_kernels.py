"""Where one forward's device time goes: the static and the per-sample forward's top kernels by time (torch profiler).

    python benchmarks/top_kernels.py --model clip-vit-b32 --device cuda
"""
from __future__ import annotations

import argparse
import sys

import torch
from dawe_throughput import build_workload, static_copy
from throughput_models import build_setup
from torch.profiler import ProfilerActivity, profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["clip-vit-b32", "minilm-l6", "t5-base"], default="clip-vit-b32")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    setup = build_setup(args.model, 128, args.tiny)
    work = build_workload(setup.model, args.tasks, device)
    inputs = {k: v.to(device) for k, v in setup.make_inputs(args.batch_size).items()}
    coefficients = (0.3 + 0.1 * torch.randn(args.batch_size, args.tasks, 1, device=device)).expand(-1, -1, work.merger.num_layers)
    static = static_copy(work.model, work.merger, coefficients.mean(0))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for name, forward in (("static", lambda: static(**inputs)), ("per-sample", lambda: work.merger(inputs, coefficients))):
        with torch.inference_mode():
            forward()
            with profile(activities=activities) as prof:
                forward()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
        print(f"\n== {name}, {args.model}, batch {args.batch_size}")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
