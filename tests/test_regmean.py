"""RegMean against hand computations: the closed form for one linear layer, the paper's special cases, and the CLI run
whose Gram matrices come from the training split and whose report says how many examples."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dawe_merge.merging.regmean import regmean_linear
from dawe_merge.methods.regmean import linear_input_grams
from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli


def test_one_linear_layer_minimises_the_summed_output_error():
    """With α = 1, W minimises Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖²: the least-squares solution of the stacked system."""
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(30, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    ws = [torch.randn(4, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    merged = regmean_linear(ws, [x.T @ x for x in xs], alpha=1.0)
    stacked_x = torch.cat(xs)
    stacked_y = torch.cat([x @ w.T for x, w in zip(xs, ws)])
    expected = torch.linalg.lstsq(stacked_x, stacked_y).solution.T  # an independent solver of the same problem
    assert torch.allclose(merged, expected, atol=1e-10)


def test_alpha_zero_is_a_per_input_weighted_average_and_equal_grams_the_mean():
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    grams = [torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)), torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64))]
    merged = regmean_linear(ws, [gr + 5.0 for gr in grams], alpha=0.0)  # off-diagonals dropped: only the diagonals count
    d1, d2 = torch.diagonal(grams[0]) + 5.0, torch.diagonal(grams[1]) + 5.0
    assert torch.allclose(merged, (ws[0] * d1 + ws[1] * d2) / (d1 + d2))
    same = torch.randn(4, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(regmean_linear(ws, [same @ same.T] * 2, alpha=0.7), (ws[0] + ws[1]) / 2)


def test_input_grams_count_every_row_and_stop_at_the_limit():
    layer = nn.Sequential(nn.Linear(3, 2))
    xs = [torch.randn(4, 3) for _ in range(3)]
    batches = [{"x": x, "index": torch.arange(4)} for x in xs]
    grams, seen = linear_input_grams(layer, {"0.weight"}, batches, lambda b: layer(b["x"]), limit=6)
    rows = torch.cat([xs[0], xs[1][:2]]).double()
    assert seen == 6 and torch.allclose(grams["0.weight"], rows.T @ rows)


def test_regmean_through_the_cli_reads_the_training_split(tiny_pool, data_config, tmp_path):
    run_cli(["test", "--config", str(data_config), "--config", str(ROOT / "configs/methods/regmean.yaml"), *pool_overrides(tiny_pool),
             *quiet_trainer(tmp_path), "--model.init_args.num_examples", "12", "--model.init_args.batch_size", "8"])  # fmt: skip
    report = json.loads((tmp_path / "results/tiny/regmean/report.json").read_text())
    assert set(TASKS) <= set(report) and 0.0 <= report["average"]["accuracy"] <= 1.0
    assert report["computed_from"]["examples_per_task"] == {t: 12 for t in TASKS}  # a limit inside the second batch
    assert "training split" in report["computed_from"]["data"]
    assert "Computed from:" in (tmp_path / "results/tiny/regmean/report.md").read_text()


def test_regmean_outside_a_run_needs_a_taskpool(tiny_pool):
    from dawe_merge.errors import ConfigError
    from dawe_merge.families.text import TextModelPool
    from dawe_merge.methods.regmean import RegMean

    method = RegMean(TextModelPool(tiny_pool["pretrained"], experts_dir=tiny_pool["experts_dir"], max_length=32))
    with pytest.raises(ConfigError, match="training data"):
        method.merge(TASKS)
