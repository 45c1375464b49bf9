"""Clean vs. corrupted accuracy: one table over a clean benchmark and its corrupted copies.

Each corrupted benchmark is the same TaskPool run with `corruption` set (its own results folder, e.g.
results/vision_small_gaussian_noise/); the table lists, per method, the clean average accuracy, the
average under each corruption, and the mean over corruptions. Methods missing from a benchmark show "–".

    python -m src.families.vision.robustness vision_small      # every results/vision_small_<corruption>/ → results/vision_small_corruptions/
"""
from __future__ import annotations

from pathlib import Path

from src.errors import ConfigError
from src.families.vision.corruptions import CORRUPTIONS
from src.reports.atomic import write_json_atomic, write_text_atomic
from src.reports.writer import ordered_methods, read_reports


def robustness_rows(clean: dict[str, dict], corrupted: dict[str, dict[str, dict]]) -> list[dict]:
    """One row per method present in the clean reports and in at least one corrupted benchmark (accuracies in %)."""
    methods = ordered_methods(m for m in clean if any(m in reports for reports in corrupted.values()))
    rows = []
    for method in methods:
        row = {"method": method, "clean": 100 * clean[method]["average"]["accuracy"]}
        for name, reports in corrupted.items():
            row[name] = 100 * reports[method]["average"]["accuracy"] if method in reports else None
        present = [row[name] for name in corrupted if row[name] is not None]
        row["corrupted mean"] = sum(present) / len(present) if len(present) == len(corrupted) else None
        rows.append(row)
    return rows


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(clean: str, corrupted: list[str] | None = None, out: str | None = None, results_dir: str = "results") -> None:
    """Write <out>/README.md and rows.json from the reports of `clean` and the `corrupted` benchmarks.

    Args:
        clean: the clean benchmark's name (a folder under results_dir).
        corrupted: the corrupted benchmarks' names, a column each named after what follows `<clean>_`
            (default: every folder `<clean>_<corruption>` under results_dir holding method reports).
        out: folder for the table (default: <results_dir>/<clean>_corruptions).
        results_dir: where the benchmarks' results are.
    """
    root = Path(results_dir)
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
    header = ["method", "clean", *columns.values(), "corrupted mean"]
    lines = [
        f"# Robustness: {clean}, clean and corrupted test sets",
        "",
        "Average accuracy (%) over the tasks; adaptive methods adapt on the test set they are evaluated on.",
        "Written by `python -m src.families.vision.robustness` from each benchmark's report.json.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join([row["method"], *(_cell(row[c]) for c in header[1:])]) + " |" for row in rows),
    ]
    Path(out).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(out) / "README.md", "\n".join(lines) + "\n")
    write_json_atomic(Path(out) / "rows.json", rows)
    print("\n".join(lines))


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main)
