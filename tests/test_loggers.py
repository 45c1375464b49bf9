"""Adaptation curves reach Lightning's loggers: CSV by default, TensorBoard from its overlay, both in the run folder,
with the checkpoints where resuming and `test --ckpt_path` look for them."""
from __future__ import annotations

import csv

import pytest
import yaml

from tests.conftest import ROOT, TASKS, pool_overrides, run_cli

STEPS = ["--trainer.max_steps", "4", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"]


def _fit(method, tiny_pool, data_config, tmp_path, *extra):
    return run_cli(["fit", "--config", str(data_config), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *pool_overrides(tiny_pool),
                    "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--results_dir", str(tmp_path / "results"),
                    *STEPS, *extra])  # fmt: skip


def test_csv_logger_by_default_in_the_run_folder(tiny_pool, data_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fit("adamerging_task_wise", tiny_pool, data_config, tmp_path)
    run = tmp_path / "runs/tiny/adamerging_task_wise"
    assert (run / "checkpoints/last.ckpt").is_file()  # not under the logger's folder
    rows = list(csv.DictReader((run / "logs/version_0/metrics.csv").open()))
    losses = [r for r in rows if r.get("train/expert_kl")]  # the config's objective names the loss
    assert [int(r["step"]) for r in losses] == [0, 1, 2, 3]  # one point per adaptation step
    assert all(float(r[f"coefficients/{t}"]) > 0 for r in losses for t in TASKS)
    assert float(losses[0]["coefficients/" + TASKS[0]]) == pytest.approx(0.3)  # the first step starts at init_lambda
    assert any(r.get("val/avg/acc") for r in rows)
    saved = yaml.safe_load((tmp_path / "results/tiny/adamerging_task_wise/fit_config.yaml").read_text())
    assert saved["trainer"]["logger"]["class_path"].endswith("CSVLogger")  # the config as given, not as built


def test_tensorboard_overlay_writes_the_adaptation_curves(tiny_pool, data_config, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "my_run"
    _fit("dawe_task_wise", tiny_pool, data_config, tmp_path, "--trainer", str(ROOT / "configs/trainer/tensorboard.yaml"),
         "--trainer.default_root_dir", str(run))  # fmt: skip
    assert (run / "checkpoints/last.ckpt").is_file() and not (run / "logs").exists()  # the overlay replaces the CSV logger
    events = event_accumulator.EventAccumulator(str(run / "tensorboard/version_0"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/expert_kl", "val/avg/acc", *(f"coefficients/{t}" for t in TASKS)} <= tags
    assert [e.step for e in events.Scalars("train/expert_kl")] == [0, 1, 2, 3]
    assert [e.step for e in events.Scalars(f"coefficients/{TASKS[0]}")] == [0, 1, 2, 3]
    assert len(events.Scalars("val/avg/acc")) >= 2  # monitored at step 0 and after the steps
