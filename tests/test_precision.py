"""bf16 evaluation (`--trainer.precision bf16-mixed`, Lightning's autocast) runs every path of the per-sample merge
and stays close to fp32; each report records how long `test` took."""
from __future__ import annotations

import json

import pytest

from tests.conftest import method_config, pool_overrides, quiet_trainer, run_cli


def test_bf16_autocast_evaluation_stays_close_to_fp32(tiny_pool, data_config, tmp_path):
    common = ["--config", str(data_config), "--config", method_config("dawe_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)]
    run_cli(["fit", *common, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"])
    reports = {}
    for precision in ("32-true", "bf16-mixed"):
        run_cli(["test", *common, "--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt"), "--trainer.precision", precision,
                 "--data.init_args.benchmark", f"tiny_{precision}"])  # fmt: skip
        reports[precision] = json.loads((tmp_path / f"results/tiny_{precision}/dawe_task_wise/report.json").read_text())
    fp32, bf16 = reports["32-true"], reports["bf16-mixed"]
    tasks = [k for k, v in fp32.items() if isinstance(v, dict) and "loss" in v]
    assert any(fp32[t]["loss"] != bf16[t]["loss"] for t in tasks), "bf16 ran: its rounding shows in the losses"
    for task in tasks:
        assert bf16[task]["loss"] == pytest.approx(fp32[task]["loss"], rel=0.05), task
        assert abs(bf16[task]["accuracy"] - fp32[task]["accuracy"]) <= 1 / 8 + 1e-9, task  # at most one of 8 test inputs flips
    assert fp32["seconds"] > 0 and bf16["seconds"] > 0
