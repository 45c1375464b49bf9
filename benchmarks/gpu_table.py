"""The markdown tables of `scripts/gpu_check.py`: its speed rows, as the README and benchmarks/README.md show them.

Every cell is read from the JSON the benchmark scripts wrote in that run; nothing here measures.

    python benchmarks/gpu_table.py results/gpu/run1.json [results/gpu/run2.json ...]   # the tables again from runs' JSON
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}".replace(",", " ")


def _rate(row: dict, variant: str) -> str:
    measured = row["evaluation"]["variants"].get(variant)
    return "–" if measured is None or measured["per_second"] is None else f"{measured['per_second']:,.0f}".replace(",", " ")


def _mark(value: float | None, target: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" + ("" if target is None else f" ({'✓' if value >= target else '✗'} ≥ {target})")


def throughput_table(rows: dict[str, dict]) -> str:
    lines = [
        "| row | static /s | per-sample /s | ÷ static | static, graphs /s | per-sample, graphs /s | ÷ static, graphs (target) "
        "| ÷ reference (≥ 20) | kernels static / per-sample | bf16 ÷ fp32 per-sample, eager / graphs | DAWE test step ÷ static, "
        "eager / graphs (≥ 0.5) | peak MiB static / per-sample / test step | adaptation ÷ reference | max abs diff vs reference | run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        ev, r = row["evaluation"], row["evaluation"]["ratios"]
        targets = ev.get("targets", {})
        kernels = ev.get("kernels_per_forward", {})
        memory = [ev["variants"].get(n, {}).get("peak_extra_mib") for n in ("static", "per_sample", "end_to_end_dawe")]
        reference = r.get("graphs_per_sample_vs_reference_speedup", r.get("per_sample_vs_reference_speedup"))
        cells = [
            label,
            _rate(row, "static"),
            _rate(row, "per_sample"),
            _num(r.get("per_sample_vs_static_throughput")),
            _rate(row, "static_graphs"),
            _rate(row, "per_sample_graphs"),
            _mark(r.get("graphs_per_sample_vs_static_throughput"), targets.get("graphs_per_sample_vs_static_throughput")),
            _num(reference, 1),
            f"{kernels.get('static', '–')} / {kernels.get('per_sample', '–')}",
            f"{_num(r.get('bf16_per_sample_vs_fp32_per_sample_throughput'))} / {_num(r.get('graphs_bf16_per_sample_vs_fp32_per_sample_throughput'))}",
            f"{_num(r.get('end_to_end_vs_static_throughput'))} / {_num(r.get('graphs_end_to_end_vs_static_throughput'))}",
            " / ".join(_num(m, 0) for m in memory),
            _num(row["adaptation"].get("speedup_cached_vs_reference")),
            "–" if ev["max_abs_diff_reference_vs_per_sample"] is None else f"{ev['max_abs_diff_reference_vs_per_sample']:.1e}",
            str(row.get("run", "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def linear_paths_table(runs: dict[str, dict]) -> str:
    lines = [
        "| precision | measured TFLOP/s · GB/s | balance measured / the rule's (FLOP/byte) | rule picked the faster path | time its wrong picks cost |",
        "|---|---|---|---|---|",
    ]
    for label, run in runs.items():
        b, s = run["balance"], run["summary"]
        lines.append(
            f"| {label} | {b['flops_per_s'] / 1e12:.1f} · {b['bytes_per_s'] / 1e9:.0f} | {b['flops_per_byte']:.1f} / {run['rule_balance']:g} "
            f"| {s['right']} of {s['cases']} | {s['lost_s'] / s['best_s']:.1%} of the best choice's time (worst case {s['worst_relative']:.0%}) |"
        )
    return "\n".join(lines)


def markdown(environment: dict, figures: dict) -> str:
    parts = [f"Device: {environment.get('device')}, torch {environment.get('torch')}; the whole check took {environment.get('total_s')} s "
             f"(speed rows {environment.get('speed_rows_s', '–')} s, method checks {environment.get('method_checks_s', '–')} s)."]  # fmt: skip
    if figures.get("throughput"):
        parts += ["### Throughput (samples/s; 8 task vectors; fp32 unless said)", throughput_table(figures["throughput"])]
    if figures.get("linear_paths"):
        parts += ["### The per-layer cost rule (build per-sample weights vs stacked inputs)", linear_paths_table(figures["linear_paths"])]
    return "\n\n".join(parts) + "\n"


def combined(paths: list[Path]) -> tuple[dict, dict]:
    """Several runs' JSON as one: a row measured again in a later run replaces the earlier run's (same label)."""
    figures: dict = {"throughput": {}, "linear_paths": {}}
    environment = {}
    for path in paths:
        data = json.loads(path.read_text())
        environment = {**environment, **data["environment"]}
        for kind in figures:
            figures[kind].update({label: {**row, "run": path.stem} for label, row in data.get(kind, {}).items()})
    return environment, figures


if __name__ == "__main__":
    print(markdown(*combined([Path(p) for p in sys.argv[1:]])))
