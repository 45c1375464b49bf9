"""Clean vs. corrupted accuracy: one table over a clean benchmark and its corrupted copies.

Each corrupted benchmark is the same TaskPool run with `corruption` set (its own results folder, e.g.
results/vision_small_gaussian_noise/); the table lists, per method, the clean average accuracy, the
average under each corruption, and the mean over corruptions. Methods missing from a benchmark show "–".

    python -m benchmarks.offline.robustness_table vision_small      # every results/vision_small_<corruption>/ → results/vision_small_corruptions/
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from dawe_merge.errors import ConfigError
from dawe_merge.families.vision.corruptions import CORRUPTIONS
from dawe_merge.reports.atomic import write_json_atomic, write_text_atomic
from dawe_merge.reports.location import default_results_dir
from dawe_merge.reports.seeds import SeedGroup, common_seeds, format_mean_sd, format_seeds, group_by_seed
from dawe_merge.reports.writer import ordered_methods, read_reports


def robustness_rows(clean: dict[str, dict], corrupted: dict[str, dict[str, dict]]) -> list[dict]:
    """One row per method present in the clean reports and in at least one corrupted benchmark (accuracies in %).

    A method run under several seeds (`<method>_seed<N>` reports) shows, in every column, the mean over the seeds
    that every column has, so each row compares the same runs; `<column> sd` holds the sample standard deviation
    (None for one seed) and "corrupted mean" is the mean over seeds of each seed's mean over the corruptions.
    """
    clean_groups = group_by_seed(clean)
    corrupted_groups = {name: group_by_seed(reports) for name, reports in corrupted.items()}
    methods = ordered_methods(m for m in clean_groups if any(m in groups for groups in corrupted_groups.values()))
    rows = []
    for method in methods:
        columns = {"clean": clean_groups[method], **{name: groups.get(method) for name, groups in corrupted_groups.items()}}
        seeds = common_seeds([g for g in columns.values() if g is not None])
        if not seeds:
            print(f"warning: {method}'s clean and corrupted runs share no seed; its row is left empty", file=sys.stderr)
        row: dict = {"method": method, "seeds": seeds}
        for name, group in columns.items():
            runs = group.restricted(seeds) if group is not None else SeedGroup(method, [])
            mean, sd = runs.mean("average"), runs.sd("average")
            row[name], row[f"{name} sd"] = (None if mean is None else 100 * mean), (None if sd is None else 100 * sd)
        corrupted_runs = [columns[name] for name in corrupted]
        means = []  # per seed, the mean over corruptions; none unless every corruption has the method
        if seeds and all(g is not None for g in corrupted_runs):
            means = [100 * statistics.fmean(g.restricted([s]).mean("average") for g in corrupted_runs) for s in seeds]
        row["corrupted mean"] = statistics.fmean(means) if means else None
        row["corrupted mean sd"] = statistics.stdev(means) if len(means) > 1 else None
        rows.append(row)
    return rows


def main(clean: str, corrupted: list[str] | None = None, out: str | None = None, results_dir: str | None = None) -> None:
    """Write <out>/README.md and rows.json from the reports of `clean` and the `corrupted` benchmarks.

    Args:
        clean: the clean benchmark's name (a folder under results_dir).
        corrupted: the corrupted benchmarks' names, a column each named after what follows `<clean>_`
            (default: every folder `<clean>_<corruption>` under results_dir holding method reports).
        out: folder for the table (default: <results_dir>/<clean>_corruptions).
        results_dir: where the benchmarks' results are (default: results, or $DAWE_MERGE_RESULTS_DIR when set).
    """
    root = Path(results_dir or default_results_dir())
    if corrupted is None:
        named = {f"{clean}_{c}" for c in CORRUPTIONS}  # not other runs that share the prefix (e.g. <clean>_bf16)
        corrupted = sorted(p.name for p in root.glob(f"{clean}_*") if p.name in named and any(p.glob("*/report.json")))
    if not corrupted:
        raise ConfigError(f"No corrupted benchmarks {clean}_* with reports under {root}/: run make vision-corruptions first.")
    out = out or str(root / f"{clean}_corruptions")
    missing = [name for name in [clean, *corrupted] if not (root / name).is_dir()]
    if missing:
        raise ConfigError(f"No results for {', '.join(missing)} under {root}/: run those benchmarks first (make vision, make vision-corruptions).")
    columns = {name: name.removeprefix(f"{clean}_") for name in corrupted}
    rows = robustness_rows(read_reports(root / clean), {columns[n]: read_reports(root / n) for n in corrupted})
    header = ["method", "clean", *columns.values(), "corrupted mean", "seeds"]
    lines = [
        f"# Robustness: {clean}, clean and corrupted test sets",
        "",
        "Average accuracy (%) over the tasks; adaptive methods adapt on the test set they are evaluated on.",
        "A method run under several seeds shows mean ± sample standard deviation over the seeds every column has (seeds).",
        "Written by `python -m benchmarks.offline.robustness_table` from each benchmark's report.json.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join([row["method"], *(format_mean_sd(row[c], row[f"{c} sd"]) for c in header[1:-1]), format_seeds(row["seeds"])]) + " |"
          for row in rows),
    ]
    Path(out).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(out) / "README.md", "\n".join(lines) + "\n")
    write_json_atomic(Path(out) / "rows.json", rows)
    print("\n".join(lines))


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main)
