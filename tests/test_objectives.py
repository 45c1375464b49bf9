"""The adaptation objectives against hand computations, and expert_kl's targets against the experts' own predictions
written by an independent path (`predict` of the individual experts)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from dawe_merge.methods.objectives import expert_kl, softmax_entropy
from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli


def test_expert_kl_by_hand():
    q = torch.tensor([[0.7, 0.2, 0.1]])
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    p = [math.exp(v) for v in (1.0, 0.0, -1.0)]
    p = [v / sum(p) for v in p]
    kl = sum(a * math.log(a / b) for a, b in zip((0.7, 0.2, 0.1), p))
    assert expert_kl(logits, q, 1.0).item() == pytest.approx(kl, rel=1e-4)
    p2 = [math.exp(v / 2) for v in (1.0, 0.0, -1.0)]
    p2 = [v / sum(p2) for v in p2]
    assert expert_kl(logits, q, 2.0).item() == pytest.approx(4 * sum(a * math.log(a / b) for a, b in zip((0.7, 0.2, 0.1), p2)), rel=1e-4)  # float32 against float64
    assert expert_kl(logits, logits.softmax(-1), 1.0).item() == pytest.approx(0.0, abs=1e-7)  # the expert itself: no loss
    assert softmax_entropy(torch.zeros(1, 4)).item() == pytest.approx(math.log(4))


def test_expert_kl_targets_are_the_experts_predictions(tiny_pool, data_config, tmp_path):
    common = ["--config", str(data_config), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)]
    cli = run_cli(["fit", *common, "--config", str(ROOT / "configs/methods/adamerging_task_wise.yaml"), "--model.init_args.objective", "expert_kl",
                   "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"])  # fmt: skip
    assert "train/expert_kl" in cli.trainer.callback_metrics and "train/entropy" not in cli.trainer.callback_metrics
    run_cli(["predict", *common, "--config", str(ROOT / "configs/methods/individual.yaml"), "--data.init_args.predict_split", "test"])
    rows = [json.loads(line) for line in (tmp_path / "results/tiny/individual/predictions.jsonl").read_text().splitlines()]
    for task in TASKS:
        targets = cli.model._expert_targets[task]
        mine = [r for r in rows if r["task"] == task]
        assert len(mine) == len(targets)
        for row in mine:
            assert torch.allclose(targets[row["index"]], torch.tensor(row["probabilities"]), atol=2e-6)
