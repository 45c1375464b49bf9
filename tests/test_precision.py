"""bf16 evaluation (`--trainer.precision bf16-mixed`, Lightning's autocast) runs every path of the per-sample merge
and stays close to fp32, its close calls decided again in fp32; each report records how long `test` took and under
what it ran."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch

from tests.conftest import method_config, pool_overrides, quiet_trainer, run_cli

THRESHOLD = ["--trainer.callbacks+=dawe_merge.methods.CloseCallThreshold", "--trainer.callbacks.ulps"]
VARIANTS = {  # name: options
    "fp32": ["--trainer.precision", "32-true"],
    "plain": ["--trainer.precision", "bf16-mixed", *THRESHOLD, "-1"],  # bf16's own decisions throughout
    "default": ["--trainer.precision", "bf16-mixed"],
    "every": ["--trainer.precision", "bf16-mixed", *THRESHOLD, ".inf"],  # every input decided again in fp32
}


def test_bf16_autocast_evaluation_stays_close_to_fp32_and_decides_close_calls_in_fp32(tiny_pool, data_config, tmp_path):
    # entropy: the adapted state this bound was set on (after expert_kl's two steps on the tiny random pool, two of one
    # task's 8 inputs sit so near a tie that plain bf16 flips both); bf16 evaluation does not depend on the objective
    common = ["--config", str(data_config), "--config", method_config("dawe_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path),
              "--model.init_args.objective", "entropy"]  # fmt: skip
    run_cli(["fit", *common, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"])
    reports, rows = {}, {}
    for name, options in VARIANTS.items():
        for stage in ("test", "predict"):
            run_cli([stage, *common, "--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt"), *options, "--data.init_args.benchmark", name])
        folder = tmp_path / f"results/{name}/dawe_task_wise"
        reports[name] = json.loads((folder / "report.json").read_text())
        rows[name] = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    fp32, plain = reports["fp32"], reports["plain"]
    tasks = [k for k, v in fp32.items() if isinstance(v, dict) and "loss" in v and k != "average"]
    assert any(fp32[t]["loss"] != plain[t]["loss"] for t in tasks), "bf16 ran: its rounding shows in the losses"
    for task in tasks:
        assert plain[task]["loss"] == pytest.approx(fp32[task]["loss"], rel=0.05), task
        assert abs(plain[task]["accuracy"] - fp32[task]["accuracy"]) <= 1 / 8 + 1e-9, task  # at most one of 8 test inputs flips
        assert "close_calls" not in fp32[task]
        assert sum(plain[task]["close_calls"]["inputs"]) == 8 and sum(plain[task]["close_calls"]["rechecked"]) == 0
        counts = reports["default"][task]["close_calls"]
        assert sum(counts["inputs"]) == 8 and sum(counts["changed"]) <= sum(counts["rechecked"]) <= 8
        # every input decided again: fp32's accuracies, and each decided input counted
        every = reports["every"][task]
        assert every["accuracy"] == fp32[task]["accuracy"] and every["close_calls"]["rechecked"] == every["close_calls"]["inputs"]
    assert reports["every"]["average"] == fp32["average"]
    assert fp32["seconds"] > 0 and plain["seconds"] > 0
    # each report says under what it ran: the precision asked for, this process's torch, threads and CPU kernels
    for name, precision in (("fp32", "32-true"), ("plain", "bf16-mixed")):
        environment = reports[name]["environment"]
        assert environment["precision"] == precision and environment["torch"] == torch.__version__, environment
        assert environment["torch_threads"] == torch.get_num_threads(), environment
        assert environment["device"].endswith(f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"), environment
        assert _cpu_model_from_cpuinfo() in environment["device"], environment
        assert f"precision {precision}" in (tmp_path / f"results/{name}/dawe_task_wise/report.md").read_text()
    # predict's rows too, the per-sample coefficients of the inputs decided again included (from that fp32 pass)
    assert len(rows["every"]) == len(rows["fp32"]) == 8 * len(tasks)
    for exact, again, bf16 in zip(rows["fp32"], rows["every"], rows["plain"]):
        assert (again["task"], again["index"], again["prediction"]) == (exact["task"], exact["index"], exact["prediction"])
        assert again["probabilities"] == pytest.approx(exact["probabilities"], abs=1e-5)
        assert again["coefficients"] == pytest.approx(exact["coefficients"], abs=1e-5)
        assert bf16["coefficients"] != pytest.approx(exact["coefficients"], abs=1e-5)  # what the fp32 pass replaced


def _cpu_model_from_cpuinfo() -> str:
    """The CPU model as /proc/cpuinfo names it ("" where there is none), read here independently of the reports module."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return ""
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")), "")
