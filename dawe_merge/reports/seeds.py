"""One row per method however many seeds it ran with: mean ± sample standard deviation over the seeds.

A run under another seed is written as its own method, `<method>_seed<N>` (`--model.init_args.name
<method>_seed<N> --seed_everything N`), so each run keeps its own report, command and checkpoints; the tables
fold `<method>` and its `<method>_seed<N>` reports into one row. Two reports that recorded the same seed are
the same run twice: only the first counts, and the second is named on stderr.
"""
from __future__ import annotations

import re
import statistics
import sys
from dataclasses import dataclass

SEED_SUFFIX = re.compile(r"^(?P<base>.+)_seed(?P<seed>\d+)$")


@dataclass
class SeedGroup:
    """A method's runs over seeds: the reports (one per distinct seed) in seed order."""

    method: str
    reports: list[dict]

    @property
    def seeds(self) -> list[int | None]:
        return [r.get("seed") for r in self.reports]

    def restricted(self, seeds: list[int | None]) -> SeedGroup:
        """The runs of these seeds only: a table comparing columns compares the same runs in each."""
        return SeedGroup(self.method, [r for r in self.reports if r.get("seed") in seeds])

    def values(self, task: str) -> list[float]:
        return [r[task]["accuracy"] for r in self.reports if task in r]

    def mean(self, task: str) -> float | None:
        values = self.values(task)
        return statistics.fmean(values) if values else None

    def sd(self, task: str) -> float | None:
        """Sample standard deviation (n - 1); None with fewer than two runs."""
        values = self.values(task)
        return statistics.stdev(values) if len(values) > 1 else None


def group_by_seed(reports: dict[str, dict]) -> dict[str, SeedGroup]:
    """Fold `<method>_seed<N>` reports into `<method>`'s group; names without the suffix are groups of their own."""
    groups: dict[str, SeedGroup] = {}
    for name in sorted(reports, key=lambda n: (SEED_SUFFIX.match(n) is not None, n)):
        match = SEED_SUFFIX.match(name)
        base = match["base"] if match else name
        group = groups.setdefault(base, SeedGroup(base, []))
        seed = reports[name].get("seed")
        if seed is not None and seed in group.seeds:
            print(f"warning: {name} recorded seed {seed}, which {base} already has; it is left out of the mean", file=sys.stderr)
            continue
        group.reports.append(reports[name])
    for group in groups.values():
        group.reports.sort(key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
    return groups


def common_seeds(groups: list[SeedGroup]) -> list[int | None]:
    """The seeds every group ran, in seed order: a row over several benchmarks averages the same seeds in each,
    so a column with more seeds than another is not compared with a different set of runs."""
    if not groups:
        return []
    common = set.intersection(*(set(g.seeds) for g in groups))
    return sorted(common, key=lambda s: (s is None, s or 0))


def format_mean_sd(mean: float | None, sd: float | None) -> str:
    """'68.40' for one run, '68.40 ± 0.35' for several (the spread a reader weighs a difference against), '–' for none."""
    if mean is None:
        return "–"
    return f"{mean:.2f}" if sd is None else f"{mean:.2f} ± {sd:.2f}"


def format_cell(group: SeedGroup, task: str) -> str:
    """Accuracy in %: '68.40' for one run, '68.40 ± 0.35' for several, '–' when the task is missing."""
    mean, sd = group.mean(task), group.sd(task)
    return format_mean_sd(None if mean is None else 100 * mean, None if sd is None else 100 * sd)


def format_written(group: SeedGroup) -> str:
    """The computed column: the UTC date each run's report was written, seeds grouped by date when they differ
    ('2026-12-05', or '2026-12-05 (0); 2026-11-30 (1, 2)'); '–' for a report from before reports recorded it."""
    by_date: dict[str, list[int | None]] = {}
    for report in group.reports:
        by_date.setdefault(str(report.get("written") or "–")[:10], []).append(report.get("seed"))
    if len(by_date) == 1:
        return next(iter(by_date))
    dates = sorted((d for d in by_date if d != "–"), reverse=True) + (["–"] if "–" in by_date else [])  # newest first
    return "; ".join(f"{date} ({format_seeds(by_date[date])})" for date in dates)


def format_seeds(seeds: list[int | None]) -> str:
    """The seeds column: which runs a row averages ("–" for a run that recorded no seed, or for no run)."""
    return ", ".join("–" if s is None else str(s) for s in seeds) or "–"
