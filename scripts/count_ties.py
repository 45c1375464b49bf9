"""How often a tie decides a validation selection, counted over the committed results.

The selection rule keeps the earliest of equally good states; this says how often that rule is what decided:
curves of the committed selection grids (results/<benchmark>/selection/) whose best average is reached at more than
one monitored step, and reports of validation-selected states that record `tied_with_later_steps`.

    python scripts/count_ties.py [--results results] [--since 2026-12-05T13:28:13]

`--since` counts only reports written since then (reports record ties from the commit that added the record on).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def tied_curves(results: Path) -> tuple[int, int, int]:
    """(curves with more than one monitored step, those whose best is reached more than once, those tied at step 0)."""
    curves = repeated = at_start = 0
    for path in sorted(results.glob("*/selection/**/*.json")):
        for candidate in json.loads(path.read_text()).get("candidates", []):
            curve = candidate.get("curve") or []
            if len(curve) < 2:
                continue
            curves += 1
            best = max(point["average"] for point in curve)
            steps = [point["step"] for point in curve if point["average"] == best]
            repeated += len(steps) > 1
            at_start += len(steps) > 1 and steps[0] == 0
    return curves, repeated, at_start


def tied_reports(results: Path, since: str) -> tuple[int, list[tuple[str, int, list[int]]]]:
    """(validation-selected reports written since `since`, the ties among them as (folder, step, tied steps))."""
    count, ties = 0, []
    for path in sorted(results.glob("*/*/report.json")):
        report = json.loads(path.read_text())
        selection = report.get("selection")
        if not selection or report.get("written", "") < since:
            continue
        count += 1
        if selection.get("tied_with_later_steps"):
            ties.append((str(path.parent.relative_to(results)), selection["step"], selection["tied_with_later_steps"]))
    return count, ties


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder")
    parser.add_argument("--since", default="2026-12-05T13:28:13", help="count reports written since (ISO time)")
    args = parser.parse_args()
    curves, repeated, at_start = tied_curves(args.results)
    print(f"selection curves with more than one monitored step: {curves}; best reached more than once: {repeated}"
          f" ({100 * repeated / max(curves, 1):.0f} %), of them at the start: {at_start}")
    count, ties = tied_reports(args.results, args.since)
    print(f"validation-selected reports written since {args.since}: {count}; decided by a tie: {len(ties)}")
    for folder, step, later in ties:
        print(f"  {folder}: step {step}, tied with {later}")


if __name__ == "__main__":
    main()
