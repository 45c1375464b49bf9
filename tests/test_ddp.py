"""Lightning DDP on CPU (gloo, 2 processes, in a subprocess): reports equal the single-process ones."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TASKS, pool_overrides, small_data_config

pytestmark = pytest.mark.slow

DIST_VARS = ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK", "GROUP_RANK")


def _run(args: list[str], results, runs) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    cmd = [sys.executable, "main.py", *args, "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
           "--trainer.default_root_dir", str(runs), "--results_dir", str(results)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("method", ["task_arithmetic", "dawe_task_wise"])
def test_two_process_test_report_equals_single_process(method, tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", max_test=7)  # odd: a padding sampler would count one twice
    base = ["test", "--config", str(data), "--config", f"configs/methods/{method}.yaml", *pool_overrides(tiny_pool)]
    _run(base, tmp_path / "single", tmp_path / "runs1")
    _run(base + ["--trainer", "configs/trainer/ddp.yaml"], tmp_path / "ddp", tmp_path / "runs2")
    name = f"{method}_start" if method.startswith("dawe") else method  # no --ckpt_path: DAWE's un-adapted start
    single = json.loads((tmp_path / "single/tiny" / name / "report.json").read_text())
    ddp = json.loads((tmp_path / "ddp/tiny" / name / "report.json").read_text())
    for task in TASKS:
        assert ddp[task]["accuracy"] == single[task]["accuracy"]
        assert ddp[task]["loss"] == pytest.approx(single[task]["loss"], abs=1e-5)
    assert "configs/trainer/ddp.yaml" in ddp["command"]
    if method.startswith("dawe"):  # coefficients summed and counted over both ranks' shards: the single process's means
        single_coefficients = json.loads((tmp_path / "single/tiny" / name / "coefficients.json").read_text())
        ddp_coefficients = json.loads((tmp_path / "ddp/tiny" / name / "coefficients.json").read_text())
        for ddp_row, single_row in zip(ddp_coefficients["by_input_task"], single_coefficients["by_input_task"], strict=True):
            assert ddp_row == pytest.approx(single_row, abs=1e-6)


def test_two_process_bf16_counts_each_close_call_once(tiny_pool, tmp_path):
    """Three test inputs per task, shards of 2 and 1: the report's counts are the sum over both ranks."""
    data = small_data_config(tmp_path / "data.yaml", max_test=3)
    base = ["test", "--config", str(data), "--config", "configs/methods/task_arithmetic.yaml", *pool_overrides(tiny_pool)]
    _run(base, tmp_path / "single", tmp_path / "runs1")
    every = ["--trainer.precision", "bf16-mixed", "--trainer.callbacks+=dawe_merge.methods.CloseCallThreshold", "--trainer.callbacks.ulps=.inf"]
    _run(base + every + ["--trainer", "configs/trainer/ddp.yaml"], tmp_path / "ddp", tmp_path / "runs2")
    single = json.loads((tmp_path / "single/tiny/task_arithmetic/report.json").read_text())
    ddp = json.loads((tmp_path / "ddp/tiny/task_arithmetic/report.json").read_text())
    for task in TASKS:
        assert ddp[task]["accuracy"] == single[task]["accuracy"]  # every input decided in fp32
        assert sum(ddp[task]["close_calls"]["inputs"]) == 3 and ddp[task]["close_calls"]["rechecked"] == ddp[task]["close_calls"]["inputs"]


def test_a_test_split_smaller_than_the_process_count_is_one_line(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", max_test=1)
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    proc = subprocess.run(
        [sys.executable, "main.py", "test", "--config", str(data), "--config", "configs/methods/task_arithmetic.yaml", *pool_overrides(tiny_pool),
         "--trainer", "configs/trainer/ddp.yaml", "--trainer.accelerator", "cpu", "--results_dir", str(tmp_path / "results")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2 and "cannot be shared by 2 processes" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not list((tmp_path / "results").rglob("report.json"))


def test_ddp_without_disabling_lightning_sampler_is_refused(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", max_test=7)
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    proc = subprocess.run(
        [sys.executable, "main.py", "test", "--config", str(data), "--config", "configs/methods/pretrained.yaml", *pool_overrides(tiny_pool),
         "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.enable_progress_bar", "false",
         "--trainer.default_root_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "use_distributed_sampler: false" in proc.stderr


@pytest.mark.parametrize("config", ["dawe_task_wise", "expert"])
def test_two_process_fit_runs_and_rank_zero_alone_writes(config, tiny_pool, tmp_path):
    """Adaptation and expert fine-tuning under DDP: gradients of the trainable part are synced by Lightning,
    one checkpoint and one set of artifacts come out, and the adapted checkpoint evaluates."""
    data = small_data_config(tmp_path / "data.yaml", max_test=7)
    extra = ["--model.init_args.task", "election_tweets", "--model.init_args.modelpool.init_args.experts_dir", str(tmp_path / "experts")] if config == "expert" else []
    validate_every = "1.0" if config == "expert" else "2"  # experts validate per epoch, adaptation per steps
    fit = ["fit", "--config", str(data), "--config", f"configs/methods/{config}.yaml", *pool_overrides(tiny_pool), *extra,
           "--trainer", "configs/trainer/ddp.yaml", "--trainer.max_steps", "2", "--trainer.val_check_interval", validate_every,
           "--trainer.limit_val_batches", "1"]  # fmt: skip
    _run(fit, tmp_path / "results", tmp_path / "runs")
    checkpoint = tmp_path / "runs/checkpoints/last.ckpt"
    assert checkpoint.exists()
    if config == "expert":
        assert (tmp_path / "experts/election_tweets/model.safetensors").exists()
        return
    steps = [line.split(",")[0] for line in (tmp_path / "results/tiny/dawe_task_wise/adaptation.csv").read_text().splitlines()[1:]]
    assert steps == ["0", "2"], "the start (Lightning's sanity check), then step 2, written once by rank 0"
    test = ["test", "--config", str(data), "--config", "configs/methods/dawe_task_wise.yaml", *pool_overrides(tiny_pool), "--ckpt_path", str(checkpoint)]
    _run(test, tmp_path / "single", tmp_path / "runs_test1")
    _run(test + ["--trainer", "configs/trainer/ddp.yaml"], tmp_path / "ddp", tmp_path / "runs_test2")
    single = json.loads((tmp_path / "single/tiny/dawe_task_wise/report.json").read_text())
    ddp = json.loads((tmp_path / "ddp/tiny/dawe_task_wise/report.json").read_text())
    assert [ddp[t]["accuracy"] for t in TASKS] == [single[t]["accuracy"] for t in TASKS]
    # summaries written after `test` cover the whole test set, not rank 0's shard (per-rank sums were off by ~1e-2);
    # what remains is float32 noise of features computed in other batches
    coefficients = [json.loads((tmp_path / run / "tiny/dawe_task_wise/coefficients.json").read_text()) for run in ("single", "ddp")]
    assert coefficients[0]["tasks"] == coefficients[1]["tasks"]
    for row_single, row_ddp in zip(coefficients[0]["by_input_task"], coefficients[1]["by_input_task"]):
        assert row_ddp == pytest.approx(row_single, abs=1e-6)
    heatmaps = [(tmp_path / run / "tiny/dawe_task_wise/coefficients_heatmap.png").read_bytes() for run in ("single", "ddp")]
    assert heatmaps[0] == heatmaps[1]


def test_two_process_predict_writes_every_input_once_as_single_process(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", max_test=7)  # odd: each rank holds another number of inputs
    base = ["predict", "--config", str(data), "--config", "configs/methods/task_arithmetic.yaml", *pool_overrides(tiny_pool)]
    _run(base, tmp_path / "single", tmp_path / "runs1")
    _run(base + ["--trainer", "configs/trainer/ddp.yaml"], tmp_path / "ddp", tmp_path / "runs2")
    rows = [[json.loads(line) for line in (tmp_path / run / "tiny/task_arithmetic/predictions.jsonl").read_text().splitlines()] for run in ("single", "ddp")]
    assert [(r["task"], r["index"], r["prediction"]) for r in rows[1]] == [(r["task"], r["index"], r["prediction"]) for r in rows[0]]
    assert [(r["task"], r["index"]) for r in rows[0]] == [(t, i) for t in TASKS for i in range(7)]
    for single, ddp in zip(*rows):
        assert ddp["probabilities"] == pytest.approx(single["probabilities"], abs=1e-5)
