"""Results are never lost: an un-adapted start never replaces an adapted report; a full disk or an unwritable folder
fails in one line before any work (or, filling up after the evaluation, prints the report and names what is missing);
runs writing one benchmark at once neither collide nor leave an inconsistent table; a bad report is refused or skipped;
adaptation that diverges stops and keeps the last good checkpoint."""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from dawe_merge.methods.adaptive import AdaptationDiverged
from dawe_merge.run_checks import user_facing_cause
from tests.conftest import (
    ROOT,
    TASKS,
    earlier_results,
    method_config,
    pool_overrides,
    quiet_trainer,
    run_cli,
    small_data_config,
)


class PoisonAtStep(L.Callback):
    """Makes the coefficients NaN at a given step, as a diverging learning rate would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            pl_module.lambdas.data.fill_(math.nan)


def _fit_poisoned(tiny_pool, tmp_path, step: int):
    trainer = {"trainer": {"max_steps": 6, "val_check_interval": 2, "limit_val_batches": 1, "callbacks": [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_top_k": -1, "save_last": True}},
        {"class_path": "tests.test_results_safety.PoisonAtStep", "init_args": {"step": step}}]}}  # fmt: skip
    (tmp_path / "trainer.yaml").write_text(yaml.safe_dump(trainer))
    data = small_data_config(tmp_path / "data.yaml")
    args = ["fit", "--config", str(data), "--config", str(ROOT / "configs/methods/adamerging_task_wise.yaml"), "--config", str(tmp_path / "trainer.yaml")]
    run_cli(args + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))


def test_nan_coefficients_stop_and_keep_the_last_good_checkpoint(tiny_pool, tmp_path):
    with pytest.raises(AdaptationDiverged, match=r"diverged at step 3 .*lambdas.*last good checkpoint is .*last\.ckpt"):
        _fit_poisoned(tiny_pool, tmp_path, step=3)
    kept = torch.load(tmp_path / "runs/checkpoints/last.ckpt", weights_only=True)
    assert kept["global_step"] == 2 and torch.isfinite(kept["state_dict"]["lambdas"]).all()


def test_nan_from_the_start_says_no_checkpoint_exists(tiny_pool, tmp_path):
    with pytest.raises(AdaptationDiverged, match="step 0 .*No checkpoint was saved yet"):
        _fit_poisoned(tiny_pool, tmp_path, step=0)
    assert not (tmp_path / "runs/checkpoints").exists()


def test_unwritable_results_folder_fails_before_evaluating(tiny_pool, tmp_path):
    blocked = tmp_path / "results_file"
    blocked.write_text("a file where the results folder should be")
    args = ["test", "--config", str(small_data_config(tmp_path / "data.yaml")), "--config", method_config("pretrained"), *pool_overrides(tiny_pool),
            *quiet_trainer(tmp_path), "--results_dir", str(blocked)]  # fmt: skip
    with pytest.raises(Exception) as info:
        run_cli(args)
    cause = user_facing_cause(info.value)
    assert cause is not None and "cannot be written" in str(cause) and "--results_dir" in str(cause)


def test_corrupt_report_of_another_method_is_named_and_skipped(tiny_pool, tmp_path, capsys):
    results = tmp_path / "results/tiny"
    earlier_results(tmp_path / "results")
    (results / "ties/report.json").write_text("")  # a 0-byte report, as a full disk leaves
    run_cli(["test", "--config", str(small_data_config(tmp_path / "data.yaml")), "--config", method_config("pretrained"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)])
    assert capsys.readouterr().err.count(f"skipping unreadable report {results / 'ties/report.json'}") == 1  # named once
    table = (results / "README.md").read_text()
    assert "| pretrained |" in table and "| ties |" not in table and "| task_arithmetic |" in table


def test_non_finite_report_is_refused_and_nothing_is_overwritten(tmp_path):
    from dawe_merge.reports.writer import InvalidReportError, write_report

    before = earlier_results(tmp_path)
    report = {t: {"accuracy": 0.5, "loss": float("nan")} for t in TASKS} | {"average": {"accuracy": 0.5, "loss": float("nan")}}
    with pytest.raises(InvalidReportError, match="non-finite metrics .*loss"):
        write_report(report, tmp_path, "tiny", "task_arithmetic", "cmd", 0)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    ok = {t: {"accuracy": 0.25, "loss": 2.0} for t in TASKS} | {"average": {"accuracy": 0.25, "loss": 2.0}}
    out = write_report(ok, tmp_path, "tiny", "task_arithmetic", "cmd", 0)
    assert json.loads((out / "report.json").read_text())["average"]["accuracy"] == 0.25
    assert not list(tmp_path.rglob(".tmp-*")), "no temporary file is left behind"


def test_fit_config_and_test_config_do_not_overwrite_each_other(tiny_pool, tmp_path):
    data = str(small_data_config(tmp_path / "data.yaml"))
    fit = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"]
    run_cli(["fit", "--config", data, "--config", method_config("adamerging_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path), *fit])
    ckpt = tmp_path / "runs/checkpoints/last.ckpt"
    run_cli(["test", "--config", data, "--config", method_config("adamerging_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path), "--ckpt_path", str(ckpt)])
    folder = tmp_path / "results/tiny/adamerging_task_wise"
    fit_config = yaml.safe_load((folder / "fit_config.yaml").read_text())
    test_config = yaml.safe_load((folder / "test_config.yaml").read_text())
    assert fit_config["trainer"]["max_steps"] == 2 and test_config["ckpt_path"] == str(ckpt) and fit_config.get("ckpt_path") is None
    assert torch.load(ckpt, weights_only=True)["merge_metadata"]["method"] == "adamerging"


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
    before = earlier_results(tmp_path / "results")
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
    before = earlier_results(tmp_path / "results")
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
    from dawe_merge.reports.writer import write_report

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
    from dawe_merge.run_checks import check_writable

    check_writable(tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []
