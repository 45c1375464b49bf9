"""One setting, two or more values: the same methods run on one benchmark under each, side by side.

Each value's runs are a benchmark of their own (results/<name>/, written by `main.py test` with
`--data.init_args.benchmark <name>`), so nothing here reruns or hand-copies a number: the table is read
from the reports. The small-T5 benchmark uses it to choose `entropy_over` (label_words vs vocabulary).

    python -m dawe_merge.reports.variants '[t5_small, t5_small_entropy_vocabulary]' '[label_words, vocabulary]' \
        '[adamerging_task_wise, dawe_task_wise]' entropy_over results/t5_small_entropy_over
"""
from __future__ import annotations

import statistics
from pathlib import Path

from dawe_merge.errors import ConfigError
from dawe_merge.reports.atomic import write_text_atomic
from dawe_merge.reports.location import default_results_dir
from dawe_merge.reports.seeds import SeedGroup, common_seeds, format_cell, format_seeds, group_by_seed
from dawe_merge.reports.writer import read_reports, report_tasks


def variant_table(reports: dict[str, dict[str, dict]], methods: list[str], setting: str) -> list[str]:
    """Markdown rows: per method, one row per value (label → that value's reports), accuracies in %; "–" if missing.

    A method run under several seeds (`<method>_seed<N>` reports) shows mean ± sd over the seeds every value ran
    (so the values compare the same runs), its mean wall time, and those seeds.
    """
    groups = {label: group_by_seed(runs) for label, runs in reports.items()}
    first = next((g[m].reports[0] for g in groups.values() for m in methods if m in g), {})
    tasks = report_tasks(first)
    low_precision = any(close_calls(r, tasks) for g in groups.values() for m in methods if m in g for r in g[m].reports)
    extra = " decided again in fp32 |" if low_precision else ""
    lines = [f"| method | {setting} | " + " | ".join(tasks) + f" | average | wall time (s) |{extra} seeds |",
             "|" + "---|" * (len(tasks) + 5 + bool(extra))]  # fmt: skip
    for method in methods:
        seeds = common_seeds([g[method] for g in groups.values() if method in g])
        for label, by_method in groups.items():
            group = by_method[method].restricted(seeds) if method in by_method else SeedGroup(method, [])
            cells = [format_cell(group, t) for t in [*tasks, "average"]]
            seconds = [r["seconds"] for r in group.reports if r.get("seconds") is not None]
            cells.append(f"{statistics.fmean(seconds):.1f}" if seconds else "–")
            if low_precision:
                cells.append(format_close_calls([close_calls(r, tasks) for r in group.reports]))
            cells.append(format_seeds(group.seeds))
            lines.append(f"| {method} | {label} | " + " | ".join(cells) + " |")
    return lines


def close_calls(report: dict, tasks: list[str]) -> dict[str, int] | None:
    """Inputs, inputs decided again in fp32 and decisions that changed, over a low-precision run's tasks (else None)."""
    counts = [report[t]["close_calls"] for t in tasks if "close_calls" in report.get(t, {})]
    return {k: sum(sum(c[k]) for c in counts) for k in ("inputs", "rechecked", "changed")} if counts else None


def format_close_calls(runs: list[dict[str, int] | None]) -> str:
    """"4.5% (12 changed)": the share of inputs decided again and how many decisions fp32 changed, over the runs."""
    runs = [r for r in runs if r]
    if not runs:
        return "–"
    inputs, rechecked, changed = (sum(r[k] for r in runs) for k in ("inputs", "rechecked", "changed"))
    return f"{100 * rechecked / inputs:.1f}% ({changed} changed)"


def main(benchmarks: list[str], labels: list[str], methods: list[str], setting: str, out: str, results_dir: str | None = None) -> None:
    """Write <out>/README.md comparing `methods` across `benchmarks` (one per value of `setting`, named by `labels`).

    Args:
        benchmarks: result folders under results_dir, one per value.
        labels: the value each benchmark ran with, in the same order.
        methods: methods to compare (rows).
        setting: the name of what differs (a column header).
        out: folder for README.md.
        results_dir: where the benchmarks' results are (default: results, or $DAWE_MERGE_RESULTS_DIR when set).
    """
    if len(benchmarks) != len(labels):
        raise ConfigError(f"Give one label per benchmark: {len(benchmarks)} benchmarks, {len(labels)} labels.")
    root = Path(results_dir or default_results_dir())
    missing = [b for b in benchmarks if not (root / b).is_dir()]
    if missing:
        raise ConfigError(f"No results for {', '.join(missing)} under {root}/: run those benchmarks first.")
    reports = {label: read_reports(root / name) for label, name in zip(labels, benchmarks)}
    lines = [f"# {setting}: {', '.join(labels)}", "", "Accuracy (%); each row read from results/<benchmark>/<method>/report.json:", ""]
    lines += [f"- {label}: results/{name}/" for label, name in zip(labels, benchmarks)] + [""]
    lines += variant_table(reports, methods, setting)
    Path(out).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(out) / "README.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main)
