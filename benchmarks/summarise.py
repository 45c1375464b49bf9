"""Markdown table of the ratios in `dawe_throughput.py --json` files, for benchmarks/README.md.

Usage: python benchmarks/summarise.py benchmarks/results/cpu_*.json
Every figure is read from the JSON files; nothing is typed in by hand.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"per_sample_vs_static": 0.5, "per_sample_vs_reference": 5.0, "memory": 2.0, "adaptation": 1.5}
LORA_STATIC_TARGET = 0.8  # with LoRA experts: batched multi-LoRA serving reaches about this share of a single model
LORA_ADAPTATION_TARGET = 1.0  # with LoRA experts: never slower than the reference's step
# with LoRA experts the reference loop's ratio has no CPU target (a batch-1 forward costs nearly a batched one on 2 cores; GPU: >= 20)


def _figures(run: dict) -> dict[str, float]:
    ev, ad = run["evaluation"]["variants"], run["adaptation"]["variants"]
    params = run["evaluation"]["parameter_mib"]

    def counted(name: str) -> float:
        return ev[name]["peak_extra_mib"] + params

    return {
        "static": ev["static"]["per_second"],
        "per_batch": ev["per_batch"]["per_second"],
        "reference": ev["reference_loop"]["per_second"],
        "per_sample": ev["per_sample"]["per_second"],
        "per_sample_vs_static": ev["per_sample"]["per_second"] / ev["static"]["per_second"],
        "per_sample_vs_reference": ev["per_sample"]["per_second"] / ev["reference_loop"]["per_second"],
        "memory": counted("per_sample") / counted("static"),
        "max_abs_diff": run["evaluation"]["max_abs_diff_reference_vs_per_sample"],
        "step_cached": ad["ours_cached_features"]["seconds_per_call"],
        "step_reference": ad["reference"]["seconds_per_call"],
        "adaptation": ad["reference"]["seconds_per_call"] / ad["ours_cached_features"]["seconds_per_call"],
        "per_task_step": ad.get("ours_per_task_backward", {}).get("seconds_per_call"),
        "per_task_peak": ad.get("ours_per_task_backward", {}).get("peak_extra_mib"),
        "cached_peak": ad["ours_cached_features"]["peak_extra_mib"],
    }


def _mark(key: str, value: float, target: float | None = None) -> str:
    bound = TARGETS[key] if target is None else target
    ok = value <= bound if key == "memory" else value >= bound
    return f"{value:.2f}× {'✓' if ok else '✗'}"


def _per_task(f: dict) -> str:
    if f["per_task_step"] is None or f["per_task_peak"] is None or not f["cached_peak"]:
        return "–"
    return f"{f['per_task_step']:.2f} s, {f['per_task_peak']:.0f} / {f['cached_peak']:.0f} MiB"


def main(paths: list[str]) -> None:
    print("| model | experts | mode | static | per-batch | reference loop | per-sample (ours) | per-sample / static (≥ 0.5; LoRA ≥ 0.8) "
          "| / reference (≥ 5) | memory / static (≤ 2) | max abs diff | adaptation step: ours cached / reference (s) | speed-up (≥ 1.5; LoRA ≥ 1) "
          "| backward per task: s/step, peak extra MiB vs one backward |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        run = json.loads(Path(path).read_text())
        f, config = _figures(run), run["config"]
        lora = config.get("lora_rank", 0)
        ratio = f["per_sample_vs_reference"]
        reference_cell = f"{ratio:.2f}× (GPU ≥ 20)" if lora else _mark("per_sample_vs_reference", ratio)
        print(
            f"| {config['model']} | {f'LoRA r{lora} q/v' if lora else 'dense'} | {config['mode']} | {f['static']:.1f} | {f['per_batch']:.1f} | {f['reference']:.2f} "
            f"| {f['per_sample']:.1f} | {_mark('per_sample_vs_static', f['per_sample_vs_static'], LORA_STATIC_TARGET if lora else None)} "
            f"| {reference_cell} "
            f"| {_mark('memory', f['memory'])} "
            f"| {f['max_abs_diff']:.1e} | {f['step_cached']:.2f} / {f['step_reference']:.2f} | {_mark('adaptation', f['adaptation'], LORA_ADAPTATION_TARGET if lora else None)} "
            f"| {_per_task(f)} |"
        )
    print("\nThroughput in samples/s (batch 16, 8 task vectors); memory counted as in the script's docstring.")


if __name__ == "__main__":
    main(sys.argv[1:])
