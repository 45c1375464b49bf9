"""scripts/count_ties.py counts what the docs say about ties from the files, not from a copied number."""
from __future__ import annotations

import json
from pathlib import Path

from scripts.count_ties import tied_curves, tied_reports


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_ties_are_counted_in_curves_and_in_reports_written_since_the_record(tmp_path):
    curve = lambda *averages: [{"step": 25.0 * i, "average": a} for i, a in enumerate(averages)]  # noqa: E731
    _write(tmp_path / "text/selection/grid.json", {"candidates": [
        {"curve": curve(0.5, 0.7, 0.7)},  # best twice: a tie
        {"curve": curve(0.6, 0.5, 0.6)},  # best at the start and later: a tie at the start
        {"curve": curve(0.5, 0.6, 0.7)},  # one best
        {"curve": curve(0.5)},  # one monitored step: not a curve
    ]})
    _write(tmp_path / "text/selection/across_like.json", {"method": "m", "mean_gain_curves": []})  # no candidates
    assert tied_curves(tmp_path) == (3, 2, 1)

    since = "2026-12-05T13:28:13"
    _write(tmp_path / "text/a_best_validation/report.json", {"written": "2026-12-06T10:00:00+00:00",
                                                            "selection": {"step": 75, "tied_with_later_steps": [100]}})
    _write(tmp_path / "text/b_best_validation/report.json", {"written": "2026-12-06T10:00:00+00:00", "selection": {"step": 50}})
    _write(tmp_path / "text/c_best_validation/report.json", {"written": "2026-12-01T10:00:00+00:00", "selection": {"step": 0}})
    _write(tmp_path / "text/task_arithmetic/report.json", {"written": "2026-12-06T10:00:00+00:00"})  # not a selection
    assert tied_reports(tmp_path, since) == (2, [("text/a_best_validation", 75, [100])])
