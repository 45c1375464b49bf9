"""Write a method's TaskPool report and refresh its benchmark's comparison table.

The report keeps FusionBench's contract (`{task: {accuracy, loss}, ..., average: {...}}`) and adds
what makes a number reproducible: the method, the exact command, the seed.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

INDIVIDUAL = "individual"
# Rows of the comparison table, in the order a reader expects; others follow alphabetically.
METHOD_ORDER = ["pretrained", "individual", "simple_average", "task_arithmetic", "ties"]


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _tasks(report: dict) -> list[str]:
    return [k for k, v in report.items() if isinstance(v, dict) and "accuracy" in v and k != "average"]


def _normalized(report: dict, benchmark_dir: Path, method: str) -> float | None:
    if method == INDIVIDUAL:
        return 1.0
    individual = benchmark_dir / INDIVIDUAL / "report.json"
    if not individual.exists():
        return None
    reference = json.loads(individual.read_text())["average"]["accuracy"]
    return report["average"]["accuracy"] / reference if reference > 0 else None


def write_report(report: dict, results_dir: str | Path, benchmark: str, method: str, command: str, seed: int | None) -> Path:
    """Write results/<benchmark>/<method>/report.{json,csv,md}; return the method folder."""
    benchmark_dir = Path(results_dir) / benchmark
    out = benchmark_dir / method
    out.mkdir(parents=True, exist_ok=True)
    full = {
        "method": method,
        **report,
        "normalized_accuracy": _normalized(report, benchmark_dir, method),
        "command": command,
        "seed": seed,
    }
    (out / "report.json").write_text(json.dumps(full, indent=2) + "\n")
    tasks = _tasks(report)
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "accuracy", "loss"])
        for task in [*tasks, "average"]:
            writer.writerow([task, f"{report[task]['accuracy']:.6f}", f"{report[task]['loss']:.6f}"])
    lines = [f"# {method} on {benchmark}", "", "| task | accuracy (%) | loss |", "|---|---|---|"]
    lines += [f"| {t} | {100 * report[t]['accuracy']:.2f} | {report[t]['loss']:.4f} |" for t in [*tasks, "average"]]
    lines += ["", f"Command: `{command}`", f"Seed: {seed}", ""]
    (out / "report.md").write_text("\n".join(lines))
    write_comparison(benchmark_dir)
    return out


def write_comparison(benchmark_dir: Path) -> Path:
    """results/<benchmark>/README.md: one row per method found in the folder."""
    reports = {p.parent.name: json.loads(p.read_text()) for p in sorted(benchmark_dir.glob("*/report.json"))}
    individual_avg = reports.get(INDIVIDUAL, {}).get("average", {}).get("accuracy")
    methods = sorted(reports, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))
    tasks = _tasks(next(iter(reports.values()))) if reports else []
    header = "| method | " + " | ".join(tasks) + " | average | normalized |"
    lines = [
        f"# Results: {benchmark_dir.name}",
        "",
        "Accuracy (%) per task, the unweighted average, and normalized accuracy (average / individual experts' average).",
        "Each method's folder holds report.json/csv/md with the exact command and seed.",
        "",
        header,
        "|" + "---|" * (len(tasks) + 3),
    ]
    for method in methods:
        r = reports[method]
        cells = [f"{100 * r[t]['accuracy']:.2f}" if t in r else "–" for t in tasks]
        avg = r["average"]["accuracy"]
        norm = f"{avg / individual_avg:.3f}" if individual_avg else "–"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {100 * avg:.2f} | {norm} |")
    path = benchmark_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def format_table(benchmark_dir: Path) -> str:
    return (benchmark_dir / "README.md").read_text()
