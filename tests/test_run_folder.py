"""One run per folder: a second fit beside an earlier one's checkpoints, or a run into a folder another live run holds, is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dawe_merge.errors import UserFacingError
from tests.conftest import ROOT, pool_overrides, quiet_trainer, run_cli, small_data_config


def _fit(tmp_path, tiny_pool, run, *extra):
    data = small_data_config(tmp_path / "data.yaml")
    return run_cli(["fit", "--config", str(data), "--config", str(ROOT / "configs/methods/adamerging_task_wise.yaml"), *pool_overrides(tiny_pool),
                    *quiet_trainer(tmp_path), "--trainer.max_steps", "2", "--trainer.val_check_interval", "1", "--trainer.limit_val_batches", "1",
                    "--trainer.default_root_dir", str(run), *extra])  # fmt: skip


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_fit_into_a_run_folder_with_checkpoints_is_refused_and_resuming_works(tiny_pool, tmp_path):
    run = tmp_path / "runs/ada"
    _fit(tmp_path, tiny_pool, run)
    assert (run / "checkpoints/last.ckpt").is_file() and not (run / ".run.lock").exists()  # the lock went with the fit
    before = _snapshot(run)
    with pytest.raises(UserFacingError, match=r"holds an earlier fit's checkpoints .* resume it with --ckpt_path .*last.ckpt"):
        _fit(tmp_path, tiny_pool, run, "--trainer.max_steps", "3")
    assert _snapshot(run) == before  # no last-v1.ckpt beside the earlier run's
    _fit(tmp_path, tiny_pool, run, "--trainer.max_steps", "3", "--ckpt_path", str(run / "checkpoints/last.ckpt"))
    assert not any(p.name.startswith("last-v") for p in (run / "checkpoints").iterdir())


def test_a_fit_into_a_folder_another_live_fit_holds_is_refused_and_a_dead_ones_lock_is_taken_over(tiny_pool, tmp_path):
    run = tmp_path / "runs/ada"
    run.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / ".run.lock").write_text(json.dumps({"pid": other.pid, "host": os.uname().nodename}))
        with pytest.raises(UserFacingError, match=rf"Run folder .* is in use by another run \(process {other.pid},"):
            _fit(tmp_path, tiny_pool, run)
        assert not (run / "checkpoints").exists()
    finally:
        other.kill()
        other.wait()
    with pytest.warns(UserWarning, match=f"taking over the lock of process {other.pid}, which is gone"):
        _fit(tmp_path, tiny_pool, run)
    assert (run / "checkpoints/last.ckpt").is_file() and not (run / ".run.lock").exists()


def test_a_test_into_a_results_folder_another_live_run_holds_is_refused(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    args = ["test", "--config", str(data), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)]
    run_cli(args)  # writes results/tiny/task_arithmetic and gives its lock back
    folder = tmp_path / "results/tiny/task_arithmetic"
    assert (folder / "report.json").is_file() and not (folder / ".run.lock").exists()
    before = _snapshot(folder)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (folder / ".run.lock").write_text(json.dumps({"pid": other.pid, "host": os.uname().nodename}))
        with pytest.raises(UserFacingError, match=rf"Results folder .* is in use by another run \(process {other.pid},.* another --results_dir"):
            run_cli(args)
    finally:
        other.kill()
        other.wait()
    assert {k: v for k, v in _snapshot(folder).items() if k != ".run.lock"} == {k: v for k, v in before.items()}
