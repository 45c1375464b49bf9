"""Results are never lost: an un-adapted start never replaces an adapted report, a full disk fails in one line before
any work (or, filling up after the evaluation, prints the report and names what is missing), and runs writing one
benchmark at once neither collide nor leave an inconsistent table."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, small_data_config
from tests.test_bad_input_cli import _sentinel

# A stand-in for a full disk: writes under FULL_DISK_DIR whose name contains FULL_DISK_MATCH fail with ENOSPC.
FULL_DISK = """
import builtins, errno, io, os
_open = io.open
def _full(file, mode="r", *args, **kwargs):
    name = os.fspath(file) if isinstance(file, (str, bytes, os.PathLike)) else ""
    if isinstance(name, str) and name.startswith(os.environ["FULL_DISK_DIR"]) and any(m in mode for m in "wax") \\
            and os.environ.get("FULL_DISK_MATCH", "") in os.path.basename(name):
        raise OSError(errno.ENOSPC, "No space left on device", name)
    return _open(file, mode, *args, **kwargs)
io.open = builtins.open = _full
"""


def _main(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "MERGE_DEBUG"}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, env={**base, **(env or {})}, timeout=600)


def _args(subcommand: str, method: str, data: Path, pool: dict, tmp_path: Path) -> list[str]:
    return [subcommand, "--config", str(data), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *pool_overrides(pool), *quiet_trainer(tmp_path)]


def test_testing_the_unadapted_start_never_replaces_the_adapted_report(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    before = _sentinel(tmp_path / "results")
    proc = _main(_args("test", "dawe_task_wise", data, tiny_pool, tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "note: no --ckpt_path: test runs dawe_task_wise's un-adapted start" in proc.stderr
    kept = {p: b for p, b in before.items() if p.name != "README.md"}  # the comparison table gains the start's row
    assert {p: p.read_bytes() for p in kept} == kept, "the adapted run's files are untouched"
    start = json.loads((tmp_path / "results/tiny/dawe_task_wise_start/report.json").read_text())
    assert start["method"] == "dawe_task_wise_start" and "dawe_task_wise_start" in (tmp_path / "results/tiny/README.md").read_text()


def _full_disk(tmp_path: Path, match: str) -> dict:
    (tmp_path / "site").mkdir(exist_ok=True)
    (tmp_path / "site/sitecustomize.py").write_text(FULL_DISK)
    return {"PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "FULL_DISK_DIR": str(tmp_path / "results"),
            "FULL_DISK_MATCH": match}  # fmt: skip


def test_a_full_disk_fails_in_one_line_before_any_work(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    before = _sentinel(tmp_path / "results")
    proc = _main(_args("test", "task_arithmetic", data, tiny_pool, tmp_path), _full_disk(tmp_path, ""))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "its disk is full" in errors[0] and "Traceback" not in proc.stderr
    assert "Testing" not in proc.stdout + proc.stderr.replace("error:", "")  # no evaluation started
    assert {p: p.read_bytes() for p in before} == before


def test_a_disk_filling_up_after_the_evaluation_prints_the_report_and_names_what_is_missing(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    proc = _main(_args("test", "task_arithmetic", data, tiny_pool, tmp_path), _full_disk(tmp_path, "report.json"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "The evaluation finished, but its report could not be written" in errors[0]
    printed = json.loads(proc.stdout[proc.stdout.index("{\n") :])
    assert set(printed) == {*TASKS, "average"}, "the evaluation is not lost: its report is printed"
    proc = _main(_args("test", "task_arithmetic", data, tiny_pool, tmp_path), _full_disk(tmp_path, "test_config.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning: test_config.yaml could not be written" in proc.stderr
    assert (tmp_path / "results/tiny/task_arithmetic/report.json").is_file()


def _writer(args: tuple[str, int, int]) -> int:
    from src.reports.writer import write_report

    results, worker, count = args
    failures = 0
    for i in range(count):
        report = {t: {"accuracy": 0.5, "loss": 1.0} for t in TASKS} | {"average": {"accuracy": 0.5, "loss": 1.0}}
        try:
            write_report(report, results, "stress", f"method_{worker}_{i % 5}", command="stress", seed=0)
        except Exception:  # counted: a collision between runs
            failures += 1
    return failures


def test_runs_writing_one_benchmark_at_once_never_collide(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        failures = pool.map(_writer, [(str(tmp_path), w, 50) for w in range(8)])
    assert sum(failures) == 0
    folder = tmp_path / "stress"
    assert not list(folder.rglob(".tmp-*")) and not list(folder.rglob(".write_probe*"))
    methods = sorted(p.parent.name for p in folder.glob("*/report.json"))
    assert len(methods) == 40 and all(json.loads((folder / m / "report.json").read_text())["method"] == m for m in methods)
    table = (folder / "README.md").read_text()
    assert all(f"| {m} |" in table for m in methods), "the last table written lists every report"


@pytest.mark.parametrize("probe_dir_kind", ["new"])
def test_the_writability_probe_leaves_nothing_behind(probe_dir_kind, tmp_path):
    from src.run_checks import check_writable

    check_writable(tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []
