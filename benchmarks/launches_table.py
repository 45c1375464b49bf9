"""Markdown table of kernels per forward and throughput, before and after a change, from `dawe_throughput.py --json`.

Usage: python benchmarks/launches_table.py benchmarks/results/launches_{before,after}_cpu_*.json
Files are paired by their name after `launches_<side>_`; every figure is read from them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _row(run: dict) -> dict:
    ev = run["evaluation"]
    v, k = ev["variants"], ev["kernels_per_forward"]
    speed = {name: (v[name]["per_second"] if name in v else None) for name in ("static", "per_sample", "reference_loop", "static_bf16", "per_sample_bf16")}
    return {"kernels": k, "speed": speed, "diff": ev["max_abs_diff_reference_vs_per_sample"], "bf16_diff": ev.get("max_abs_diff_bf16_vs_fp32_per_sample")}


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(paths: list[str]) -> None:
    runs: dict[str, dict[str, dict]] = {}
    for path in map(Path, paths):
        side, _, key = path.stem.removeprefix("launches_").partition("_")
        runs.setdefault(key, {})[side] = json.loads(path.read_text())
    print("| model, mode | code | kernels static / per-sample | samples/s static / per-sample | per-sample / static | / reference loop "
          "| bf16: static / per-sample samples/s | bf16 per-sample / fp32 | max abs diff vs reference; bf16 vs fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in sorted(runs):
        for side in ("before", "after"):
            if side not in runs[key]:
                continue
            run = runs[key][side]
            r = _row(run)
            s = r["speed"]
            config = run["config"]
            ratio = s["per_sample"] / s["static"]
            bf16 = f"{_f(s['static_bf16'])} / {_f(s['per_sample_bf16'])}"
            bf16_ratio = _f(s["per_sample_bf16"] / s["per_sample"], 2) + "×" if s["per_sample_bf16"] else "–"
            print(f"| {config['model']}, {config['mode']} | {side} | {r['kernels'].get('static')} / {r['kernels'].get('per_sample')} "
                  f"| {_f(s['static'])} / {_f(s['per_sample'])} | {ratio:.2f}× | {s['per_sample'] / s['reference_loop']:.1f}× | {bf16} | {bf16_ratio} "
                  f"| {r['diff']:.1e}; {_f(r['bf16_diff'], 4)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
