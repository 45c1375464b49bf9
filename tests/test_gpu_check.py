"""The GPU check (`make gpu-check`): its harness runs on the CPU in the suite, so it cannot rot where no GPU is."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from dawe_merge.methods.registry import method_names
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
    assert "gpu check: passed" in proc.stdout and f"[dense] and [lora] {len(method_names())} methods" in proc.stdout  # every registered one
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


def test_gpu_tables_combine_runs_with_a_later_row_replacing_an_earlier_one(tmp_path):
    from benchmarks.gpu_table import combined, markdown

    def row(static: float) -> dict:
        variants = {"static": {"per_second": static, "peak_extra_mib": 1.0}, "per_sample": {"per_second": static / 2, "peak_extra_mib": 2.0}}
        evaluation = {"variants": variants, "ratios": {"per_sample_vs_static_throughput": 0.5}, "max_abs_diff_reference_vs_per_sample": 1e-6}
        return {"evaluation": evaluation, "adaptation": {}}

    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({"environment": {"device": "X"}, "throughput": {"a": row(100.0), "b": row(200.0)}}))
    second.write_text(json.dumps({"environment": {"device": "X"}, "throughput": {"a": row(300.0)}}))
    environment, figures = combined([first, second])
    assert [(label, r["run"], r["evaluation"]["variants"]["static"]["per_second"]) for label, r in figures["throughput"].items()] == [
        ("a", "second", 300.0), ("b", "first", 200.0)]  # fmt: skip
    table = markdown(environment, figures)
    assert "| a | 300 | 150 | 0.50 |" in table and table.rstrip().endswith("| first |")


def test_the_committed_gpu_tables_are_what_the_committed_runs_print():
    """results/gpu/gpu_check.md and the table in benchmarks/README.md come from the runs' JSON, not typed in."""
    from benchmarks.gpu_table import combined, markdown

    runs = sorted((ROOT / "results/gpu").glob("run*_gpu_check.json"))
    printed = markdown(*combined(runs))
    assert (ROOT / "results/gpu/gpu_check.md").read_text().rstrip("\n") == printed.rstrip("\n")
    readme = (ROOT / "benchmarks/README.md").read_text()
    assert all(line in readme for line in printed.splitlines() if line.startswith("| "))
