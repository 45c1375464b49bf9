"""Markdown table of the ratios in `dawe_throughput.py --json` files, for benchmarks/README.md.

Usage: python benchmarks/summarise.py benchmarks/results/cpu_*.json
Every figure is read from the JSON files; nothing is typed in by hand.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"per_sample_vs_static": 0.5, "per_sample_vs_reference": 5.0, "memory": 2.0, "adaptation": 1.5}


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
    }


def _mark(key: str, value: float) -> str:
    ok = value <= TARGETS[key] if key == "memory" else value >= TARGETS[key]
    return f"{value:.2f}× {'✓' if ok else '✗'}"


def main(paths: list[str]) -> None:
    print("| model | mode | static | per-batch | reference loop | per-sample (ours) | per-sample / static (≥ 0.5) "
          "| / reference (≥ 5) | memory / static (≤ 2) | max abs diff | adaptation step: ours cached / reference (s) | speed-up (≥ 1.5) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        run = json.loads(Path(path).read_text())
        f, config = _figures(run), run["config"]
        print(
            f"| {config['model']} | {config['mode']} | {f['static']:.1f} | {f['per_batch']:.1f} | {f['reference']:.2f} "
            f"| {f['per_sample']:.1f} | {_mark('per_sample_vs_static', f['per_sample_vs_static'])} "
            f"| {_mark('per_sample_vs_reference', f['per_sample_vs_reference'])} | {_mark('memory', f['memory'])} "
            f"| {f['max_abs_diff']:.1e} | {f['step_cached']:.2f} / {f['step_reference']:.2f} | {_mark('adaptation', f['adaptation'])} |"
        )
    print("\nThroughput in samples/s (batch 16, 8 task vectors); memory counted as in the script's docstring.")


if __name__ == "__main__":
    main(sys.argv[1:])
