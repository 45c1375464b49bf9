"""The comparison table folds a method's runs under other seeds into one row: mean ± sample sd."""
from __future__ import annotations

import json

from dawe_merge.reports.writer import write_comparison

TASKS = ["a", "b"]


def _report(method: str, seed: int | None, a: float, b: float) -> dict:
    return {"method": method, "a": {"accuracy": a, "loss": 1.0}, "b": {"accuracy": b, "loss": 1.0},
            "average": {"accuracy": (a + b) / 2, "loss": 1.0}, "seed": seed}  # fmt: skip


def _write(folder, name: str, report: dict) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "report.json").write_text(json.dumps(report))


def test_seed_runs_share_one_row_with_mean_and_sample_sd(tmp_path, capsys):
    folder = tmp_path / "bench"
    _write(folder, "individual", _report("individual", 0, 0.80, 1.00))
    _write(folder, "dawe", _report("dawe", 0, 0.50, 0.70))
    _write(folder, "dawe_seed1", _report("dawe_seed1", 1, 0.60, 0.70))
    _write(folder, "dawe_seed2", _report("dawe_seed2", 2, 0.70, 0.70))
    _write(folder, "dawe_seed7", _report("dawe_seed7", 2, 0.10, 0.10))  # seed 2 again: the same run twice, left out
    table = write_comparison(folder).read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    # a: 50, 60, 70 → mean 60, sd sqrt(((-10)² + 0 + 10²) / 2) = 10; b: 70 three times → sd 0; average: 60, 65, 70 → 65 ± 5
    assert rows["dawe"] == "| dawe | 60.00 ± 10.00 | 70.00 ± 0.00 | 65.00 ± 5.00 | 0.722 | 0, 1, 2 | – |"  # 65 / 90
    assert rows["individual"] == "| individual | 80.00 | 100.00 | 90.00 | 1.000 | 0 | – |"
    assert not any(name.startswith("dawe_seed") for name in rows), "seed runs are folded into their method's row"
    assert "dawe_seed7 recorded seed 2, which dawe already has" in capsys.readouterr().err


def test_seed_runs_without_the_seed_0_run_still_form_a_row(tmp_path):
    folder = tmp_path / "bench"
    _write(folder, "ties_seed1", _report("ties_seed1", 1, 0.40, 0.60))
    _write(folder, "ties_seed2", _report("ties_seed2", 2, 0.60, 0.60))
    table = write_comparison(folder).read_text()
    assert "| ties | 50.00 ± 14.14 | 60.00 ± 0.00 | 55.00 ± 7.07 | – | 1, 2 | – |" in table


def test_a_row_says_when_each_seed_was_computed(tmp_path):
    """Seed 0 written now by the writer, seeds 1 and 2 read from reports written on an earlier day (or undated)."""
    from datetime import datetime, timezone

    from dawe_merge.reports.writer import write_report

    folder = tmp_path / "bench"
    _write(folder, "dawe_seed1", {**_report("dawe_seed1", 1, 0.6, 0.7), "written": "2026-11-30T10:00:00+00:00"})
    _write(folder, "dawe_seed2", _report("dawe_seed2", 2, 0.7, 0.7))  # a report from before dates were recorded
    report = {"a": {"accuracy": 0.5, "loss": 1.0}, "b": {"accuracy": 0.7, "loss": 1.0}, "average": {"accuracy": 0.6, "loss": 1.0}}
    write_report(report, tmp_path, "bench", "dawe", command="main.py test", seed=0)
    today = datetime.now(timezone.utc).date().isoformat()
    assert json.loads((folder / "dawe/report.json").read_text())["written"].startswith(today)
    row = next(line for line in (folder / "README.md").read_text().splitlines() if line.startswith("| dawe |"))
    assert row.endswith(f"| 0, 1, 2 | {today} (0); 2026-11-30 (1); – (2) |")
