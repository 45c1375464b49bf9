"""Write a method's TaskPool report and refresh its benchmark's comparison table.

The report keeps FusionBench's contract (`{task: {accuracy, loss}, ..., average: {...}}`) and adds
what makes a number reproducible: the method, the exact command, the seed. Every file is written
atomically; a report with a non-finite number is refused before anything is written, and a corrupt
report of another method is named and left out of the table, never fatal.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from dawe_merge.errors import UserFacingError
from dawe_merge.reports.atomic import locked, write_json_atomic, write_text_atomic
from dawe_merge.reports.seeds import format_cell, format_seeds, format_written, group_by_seed

INDIVIDUAL = "individual"


class InvalidReportError(UserFacingError, ValueError):
    """A report that must not be written (non-finite metrics)."""


def ordered_methods(methods: Iterable[str]) -> list[str]:
    """Report names in the tables' order: the method registry's (dawe_merge/methods/registry.py), others after by name."""
    from dawe_merge.methods.registry import table_rank  # here: `python -m dawe_merge.methods.registry` imports this module first

    return sorted(methods, key=table_rank)


def report_tasks(report: dict) -> list[str]:
    """The task names of a report, in its order (every entry with an accuracy but the average)."""
    return [k for k, v in report.items() if isinstance(v, dict) and "accuracy" in v and k != "average"]


def read_reports(benchmark_dir: Path) -> dict[str, dict]:
    """Every method's report.json under the benchmark; unreadable ones are named on stderr and skipped."""
    reports = {}
    for path in sorted(benchmark_dir.glob("*/report.json")):
        try:
            report = json.loads(path.read_text())
            float(report["average"]["accuracy"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"warning: skipping unreadable report {path} ({type(err).__name__}: {err}); rerun that method to restore it", file=sys.stderr)
            continue
        reports[path.parent.name] = report
    return reports


def _check_finite(report: dict, method: str) -> None:
    bad = [f"{task}/{key}" for task, values in report.items() for key, v in values.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise InvalidReportError(
            f"{method}: non-finite metrics ({', '.join(bad[:4])}); nothing was written and earlier results are kept. "
            "Check the experts and the merge (a NaN/inf weight, an overflow)."
        )


def write_report(report: dict, results_dir: str | Path, benchmark: str, method: str, command: str, seed: int | None,
                 seconds: float | None = None, selection: dict | None = None, computed_from: dict | None = None,
                 environment: dict | None = None) -> Path:  # fmt: skip
    """Write results/<benchmark>/<method>/report.{json,csv,md}; return the method folder. seconds: the run's wall time;
    selection: which adapted state was evaluated, when it was chosen on validation data ({"rule", "step", ...});
    computed_from: what a merge computed from data read (which split, how many examples); environment: versions,
    device, precision and threads (dawe_merge/reports/environment.py)."""
    _check_finite(report, method)
    benchmark_dir = Path(results_dir) / benchmark
    out = benchmark_dir / method
    out.mkdir(parents=True, exist_ok=True)
    with locked(benchmark_dir):  # another run may be writing this benchmark's reports and table right now
        return _write_report(report, benchmark_dir, out, method, command, seed, seconds, selection, computed_from, environment)


def _write_report(
    report: dict, benchmark_dir: Path, out: Path, method: str, command: str, seed: int | None, seconds: float | None, selection: dict | None,
    computed_from: dict | None = None, environment: dict | None = None,
) -> Path:
    reports = read_reports(benchmark_dir)
    individual = reports.get(INDIVIDUAL)
    reference = individual["average"]["accuracy"] if individual else None
    normalized = 1.0 if method == INDIVIDUAL else (report["average"]["accuracy"] / reference if reference else None)
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    full = {"method": method, **report, "normalized_accuracy": normalized, "command": command, "seed": seed,
            "seconds": None if seconds is None else round(seconds, 2), "written": written, **({"selection": selection} if selection else {}),
            **({"computed_from": computed_from} if computed_from else {}), **({"environment": environment} if environment else {})}  # fmt: skip
    tasks = report_tasks(report)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["task", "accuracy", "loss"])
    for task in [*tasks, "average"]:
        writer.writerow([task, f"{report[task]['accuracy']:.6f}", f"{report[task]['loss']:.6f}"])
    lines = [f"# {method} on {benchmark_dir.name}", "", "| task | accuracy (%) | loss |", "|---|---|---|"]
    lines += [f"| {t} | {100 * report[t]['accuracy']:.2f} | {report[t]['loss']:.4f} |" for t in [*tasks, "average"]]
    chosen = [] if not selection else [f"Selected ({selection['rule']}): the state of step {selection['step']}"]
    chosen += [] if not computed_from else [f"Computed from: {json.dumps(computed_from)}"]
    chosen += [] if not environment else ["Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items())]
    lines += ["", f"Command: `{command}`", f"Seed: {seed}", *chosen, *([] if seconds is None else [f"Wall time: {seconds:.1f} s"]), ""]
    write_text_atomic(out / "report.csv", rows.getvalue())
    write_text_atomic(out / "report.md", "\n".join(lines))
    write_json_atomic(out / "report.json", full)  # last: the table and later runs read it
    write_comparison(benchmark_dir, {**reports, method: full})
    return out


def write_comparison(benchmark_dir: Path, reports: dict[str, dict] | None = None) -> Path:
    """results/<benchmark>/README.md: one row per method with a readable report (read here unless given).

    A method's runs under other seeds (`<method>_seed<N>`, dawe_merge/reports/seeds.py) share its row as mean ± sd.
    """
    reports = read_reports(benchmark_dir) if reports is None else reports
    groups = group_by_seed(reports)
    individual = groups.get(INDIVIDUAL)
    individual_avg = individual.mean("average") if individual else None
    tasks = report_tasks(next(iter(reports.values()))) if reports else []
    header = "| method | " + " | ".join(tasks) + " | average | normalized | seeds | computed |"
    lines = [
        f"# Results: {benchmark_dir.name}",
        "",
        "Accuracy (%) per task, the unweighted average, and normalized accuracy (average / individual experts' average).",
        "A method run under several seeds (its `<method>_seed<N>` folders) shows mean ± sample standard deviation over them.",
        "Each method's folder holds report.json/csv/md with the exact command and seed; `computed` is the UTC date its",
        "reports were written (– : before reports recorded it), so rows read from earlier or committed runs say so.",
        "",
        header,
        "|" + "---|" * (len(tasks) + 5),
    ]
    for method in ordered_methods(groups):
        group = groups[method]
        cells = [format_cell(group, t) for t in [*tasks, "average"]]
        norm = f"{group.mean('average') / individual_avg:.3f}" if individual_avg else "–"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {norm} | {format_seeds(group.seeds)} | {format_written(group)} |")
    path = benchmark_dir / "README.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
