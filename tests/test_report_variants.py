"""The side-by-side table of one setting's values is read from the reports, never retyped."""
from __future__ import annotations

from dawe_merge.reports.variants import main
from dawe_merge.reports.writer import write_report


def _report(a: float, b: float) -> dict:
    return {"x": {"accuracy": a, "loss": 1.0}, "y": {"accuracy": b, "loss": 1.0}, "average": {"accuracy": (a + b) / 2, "loss": 1.0}}


def test_rows_per_method_and_value_with_missing_runs_shown(tmp_path):
    write_report(_report(0.5, 0.75), tmp_path, "bench", "dawe", "cmd", 0, seconds=12.34)
    write_report(_report(0.25, 1.0), tmp_path, "bench_vocab", "dawe", "cmd", 0)
    write_report(_report(0.125, 0.5), tmp_path, "bench", "ada", "cmd", 0)
    main(["bench", "bench_vocab"], ["words", "vocab"], ["ada", "dawe"], "entropy_over", str(tmp_path / "out"), results_dir=str(tmp_path))
    lines = (tmp_path / "out/README.md").read_text().splitlines()
    assert "| method | entropy_over | x | y | average | wall time (s) | seeds |" in lines
    assert "| dawe | words | 50.00 | 75.00 | 62.50 | 12.3 | 0 |" in lines and "| dawe | vocab | 25.00 | 100.00 | 62.50 | – | 0 |" in lines
    assert "| ada | vocab | – | – | – | – | – |" in lines


def test_a_method_under_several_seeds_is_one_row_of_mean_and_sd(tmp_path):
    write_report(_report(0.5, 0.75), tmp_path, "bench", "dawe", "cmd", 0, seconds=10.0)
    write_report(_report(0.75, 0.25), tmp_path, "bench", "dawe_seed1", "cmd", 1, seconds=20.0)
    main(["bench"], ["words"], ["dawe"], "entropy_over", str(tmp_path / "out"), results_dir=str(tmp_path))
    lines = (tmp_path / "out/README.md").read_text().splitlines()
    # x: 50 and 75 → mean 62.50, sample sd 17.68; y: 75 and 25 → 50.00 ± 35.36; average: 62.5 and 50 → 56.25 ± 8.84
    assert "| dawe | words | 62.50 ± 17.68 | 50.00 ± 35.36 | 56.25 ± 8.84 | 15.0 | 0, 1 |" in lines


def test_the_values_compare_the_seeds_both_ran(tmp_path):
    """A value run under seeds 0, 1 beside one run only under seed 0: both rows show seed 0 alone."""
    write_report(_report(0.5, 0.75), tmp_path, "bench", "dawe", "cmd", 0)
    write_report(_report(0.75, 0.25), tmp_path, "bench", "dawe_seed1", "cmd", 1)
    write_report(_report(0.25, 1.0), tmp_path, "bench_vocab", "dawe", "cmd", 0)
    main(["bench", "bench_vocab"], ["words", "vocab"], ["dawe"], "entropy_over", str(tmp_path / "out"), results_dir=str(tmp_path))
    lines = (tmp_path / "out/README.md").read_text().splitlines()
    assert "| dawe | words | 50.00 | 75.00 | 62.50 | – | 0 |" in lines and "| dawe | vocab | 25.00 | 100.00 | 62.50 | – | 0 |" in lines


def test_low_precision_runs_show_the_share_decided_again_in_fp32(tmp_path):
    fp32 = _report(0.5, 0.75)
    bf16 = _report(0.5, 0.75)
    bf16["x"]["close_calls"] = {"inputs": [1, 3, 6], "rechecked": [1, 3, 0], "changed": [1, 0, 0]}
    bf16["y"]["close_calls"] = {"inputs": [0, 0, 10], "rechecked": [0, 0, 0], "changed": [0, 0, 0]}
    write_report(fp32, tmp_path, "bench_32", "dawe", "cmd", 0)
    write_report(bf16, tmp_path, "bench_bf16", "dawe", "cmd", 0)
    main(["bench_32", "bench_bf16"], ["32-true", "bf16-mixed"], ["dawe"], "precision", str(tmp_path / "out"), results_dir=str(tmp_path))
    lines = (tmp_path / "out/README.md").read_text().splitlines()
    assert "| method | precision | x | y | average | wall time (s) | decided again in fp32 | seeds |" in lines
    # 4 of 20 inputs decided again, one decision changed; fp32 has no close calls
    assert "| dawe | 32-true | 50.00 | 75.00 | 62.50 | – | – | 0 |" in lines
    assert "| dawe | bf16-mixed | 50.00 | 75.00 | 62.50 | – | 20.0% (1 changed) | 0 |" in lines


def test_per_tensor_plot_groups_tensors_by_block(tmp_path):
    from dawe_merge.reports.plots import plot_layer_coefficients, tensor_blocks

    names = ["embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight", "encoder.layer.0.attention.self.query.weight",
             "encoder.layer.0.output.dense.weight", "encoder.layer.1.attention.self.query.weight", "vision.encoder.layers.11.mlp.fc1.weight",
             "pooler.dense.weight"]  # fmt: skip
    assert tensor_blocks(names) == [(0, "embeddings"), (2, "layer.0"), (4, "layer.1"), (5, "layers.11"), (6, "pooler")]
    out = plot_layer_coefficients([[0.3] * 7, [0.4] * 7], ["a", "b"], tmp_path / "per_tensor.png", "t", names)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
