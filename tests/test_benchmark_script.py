"""benchmarks/dawe_throughput.py runs end to end at tiny sizes, writes every figure, and its exactness check holds."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dawe_throughput.py"
EVAL_VARIANTS = ("static", "per_batch", "reference_loop", "per_sample")
ADAPT_VARIANTS = ("ours_recomputed_features", "ours_cached_features", "reference", "ours_per_task_backward")
FIGURES = ("seconds", "seconds_per_call", "per_second", "peak_extra_mib", "peak_extra_bytes")


def _load_script():
    """The script as the module benchmarks.dawe_throughput (a namespace package: the repository root is on sys.path)."""
    return importlib.import_module("benchmarks.dawe_throughput")


def _run(tmp_path: Path, model: str, mode: str, extra: tuple = ()) -> tuple[int, dict]:
    out = tmp_path / f"{model}_{mode}.json"
    args = ["--model", model, "--mode", mode, "--tiny", "--batch-size", "2", "--tasks", "2", "--seq-len", "8", "--repeats", "1", *extra]
    args += ["--threads", "1", "--json", str(out)]  # one thread: tiny ops only lose from a second one
    threads = torch.get_num_threads()
    try:
        code = _load_script().main(args)
    finally:
        torch.set_num_threads(threads)
    return code, json.loads(out.read_text())


def _check_figures(report: dict) -> None:
    evaluation, adaptation = report["evaluation"], report["adaptation"]
    for name in EVAL_VARIANTS:
        variant = evaluation["variants"][name]
        assert variant["error"] is None, variant["error"]
        for figure in FIGURES:
            assert variant[figure] is not None, (name, figure)
        assert variant["per_second"] > 0 and len(variant["seconds"]) == 1
        assert evaluation["counted_mib"][name] is not None
    assert set(evaluation["ratios"]) == set(evaluation["targets"]) | {"memory_per_sample_with_task_vectors_vs_static"}
    assert all(value is not None for value in evaluation["ratios"].values())
    assert set(evaluation["checks"]) == set(evaluation["targets"])
    assert all(isinstance(v, bool) for v in evaluation["checks"].values())
    for key in ("parameter_mib", "task_vector_mib", "num_parameters", "num_merged_tensors"):
        assert evaluation[key] > 0, key
    kernels = evaluation["kernels_per_forward"]
    assert kernels["per_sample"] > kernels["static"] > 0, "the per-sample path adds its products to the static forward's"
    bounded = min(report["config"]["reference_samples"], report["config"]["batch_size"])
    assert evaluation["reference_samples"] == bounded and evaluation["variants"]["reference_loop"]["items_per_call"] == bounded
    for name in ADAPT_VARIANTS:
        variant = adaptation["variants"][name]
        assert variant["error"] is None, variant["error"]
        for figure in FIGURES:
            assert variant[figure] is not None, (name, figure)
    assert adaptation["feature_cache_seconds"] > 0
    assert adaptation["speedup_cached_vs_reference"] > 0 and isinstance(adaptation["check"], bool)


@pytest.mark.parametrize(("model", "mode"), [("minilm-l6", "task"), ("clip-vit-b32", "layer")])
def test_benchmark_writes_every_figure_and_outputs_agree(tmp_path, model, mode):
    code, report = _run(tmp_path, model, mode)
    _check_figures(report)
    assert report["evaluation"]["max_abs_diff_reference_vs_per_sample"] < 1e-4
    assert report["evaluation"]["outputs_agree"] is True
    assert code == 0


def test_benchmark_bounds_the_reference_loop_and_times_bf16_autocast(tmp_path):
    code, report = _run(tmp_path, "minilm-l6", "layer", ("--batch-size", "3", "--reference-samples", "2", "--bf16", "--skip-adaptation"))
    evaluation = report["evaluation"]
    assert evaluation["reference_samples"] == 2 and evaluation["variants"]["reference_loop"]["items_per_call"] == 2
    assert evaluation["outputs_agree"] is True and code == 0
    for name in ("static_bf16", "per_sample_bf16"):
        assert evaluation["variants"][name]["per_second"] > 0 and evaluation["kernels_per_forward"][name] > 0
    # bf16 keeps 8 bits of mantissa: outputs within a few per cent of their size, and not identical to fp32
    assert 0 < evaluation["max_abs_diff_bf16_vs_fp32_per_sample"] < 0.05 * evaluation["output_scale"]
    assert evaluation["ratios"]["bf16_per_sample_vs_fp32_per_sample_throughput"] > 0


def test_launches_table_reads_kernels_and_speeds_from_the_json(tmp_path, capsys):
    from benchmarks.launches_table import main as table

    _, report = _run(tmp_path, "minilm-l6", "task", ("--bf16", "--skip-adaptation"))
    (tmp_path / "launches_after_cpu_minilm-l6_task.json").write_text(json.dumps(report))
    table([str(tmp_path / "launches_after_cpu_minilm-l6_task.json")])
    row = capsys.readouterr().out.splitlines()[-1]
    kernels = report["evaluation"]["kernels_per_forward"]
    assert row.startswith("| minilm-l6, task | after | ") and f"| {kernels['static']} / {kernels['per_sample']} |" in row


def test_benchmark_t5_outputs_agree(tmp_path):
    code, report = _run(tmp_path, "t5-base", "task")
    assert report["evaluation"]["outputs_agree"] is True and code == 0


@pytest.mark.parametrize("model", ["minilm-l6", "t5-base"])
def test_benchmark_lora_experts_stay_factored_and_agree(tmp_path, model):
    code, report = _run(tmp_path, model, "layer", ("--lora-rank", "2"))
    _check_figures(report)
    assert report["config"]["lora_rank"] == 2 and report["evaluation"]["outputs_agree"] is True and code == 0
    assert report["evaluation"]["num_merged_tensors"] == 2 * 2  # 2 layers × (query, value): LoRA touches q/v only


def test_adaptation_memory_estimate_recovers_a_linear_memory_model_and_the_script_runs(tmp_path):
    import subprocess

    from benchmarks.adaptation_memory import extrapolate

    def model(k: int, b: int) -> float:  # a constant, then per task batch alive: weights + activations per input
        return 100.0 + k * (300.0 + 40.0 * b)

    rows = [{"variant": v, "task_batches": k, "batch": b, "extra_mib": model(1 if v != "before" else k, b), "fixed_mib": 5.0}
            for v in ("before", "per-task") for k in (1, 2) for b in (1, 2)]  # fmt: skip
    before = extrapolate(rows, "before", tasks=8, target_batch=16)
    assert before["extra_mib"] == pytest.approx(model(8, 16)) and before["total_mib"] == pytest.approx(model(8, 16) + 5.0)
    assert extrapolate(rows, "per-task", tasks=8, target_batch=16)["extra_mib"] == pytest.approx(model(1, 16))
    assert extrapolate([r for r in rows if r["batch"] == 1], "before", 8, 16) is None, "one batch size cannot give a slope"

    out = tmp_path / "memory.json"
    script = SCRIPT.parent / "adaptation_memory.py"
    args = ["--model", "tiny", "--tasks", "2", "--batch-sizes", "1", "2", "--task-batches", "1", "2", "--json", str(out)]
    subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True, cwd=SCRIPT.parents[1])
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 3 * 2 * 2 and {e["variant"] for e in saved["extrapolated"]} == {"before", "per-task", "per-task+bf16"}
    bf16, fp32 = (next(r["fixed_mib"] for r in saved["rows"] if r["variant"] == v) for v in ("per-task+bf16", "per-task"))
    assert bf16 < 0.75 * fp32, "the bf16 store holds the task vectors in half the bytes"
