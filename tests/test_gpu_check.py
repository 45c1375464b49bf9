"""The GPU check (`make gpu-check`): its harness runs on the CPU in the suite, so it cannot rot where no GPU is."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from scripts.gpu_check import disagreements
from tests.conftest import ROOT

REPORT = {"m": {"method": "m", "a": {"accuracy": 0.5, "loss": 1.0}, "average": {"accuracy": 0.5, "loss": 1.0}, "seed": 0}}


def test_agreement_is_exact_accuracy_and_a_stated_loss_tolerance():
    assert disagreements("x", REPORT, copy.deepcopy(REPORT)) == []
    close = copy.deepcopy(REPORT)
    close["m"]["a"]["loss"] += 5e-4  # within 1e-4 + 1e-3 * 1.0
    assert disagreements("x", REPORT, close) == []
    far = copy.deepcopy(REPORT)
    far["m"]["a"]["loss"] += 5e-3
    far["m"]["average"]["accuracy"] = 0.25
    assert [f.split(":")[0] for f in disagreements("x", REPORT, far)] == ["x m a", "x m average"]


@pytest.mark.slow
def test_the_gpu_check_passes_dry_with_the_cpu_standing_in(tmp_path):
    command = [sys.executable, "scripts/gpu_check.py", "--dry", "--out", str(tmp_path)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gpu check: passed" in proc.stdout and "[dense] and [lora] 9 methods" in proc.stdout
    assert "per-sample" in proc.stdout and "the rule picked the faster path" in proc.stdout  # both speed scripts ran
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    (row,) = figures["throughput"].values()
    table = (tmp_path / "gpu_check.md").read_text()
    # the table's cells are the JSON's figures: the row's static samples/s and the cost rule's count of right picks
    assert f"| {row['evaluation']['variants']['static']['per_second']:,.0f}".replace(",", " ") in table
    assert f"{figures['linear_paths']['fp32']['summary']['right']} of {figures['linear_paths']['fp32']['summary']['cases']}" in table


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_check_passes_on_the_gpu():
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--device", "cuda", "--skip-throughput"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
