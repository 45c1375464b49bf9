"""Fisher merging against hand computations: the weighted average, the Fisher of a one-weight model worked out on
paper, and the CLI run whose Fisher comes from the training split and whose report says how many examples."""
from __future__ import annotations

import json

import pytest
import torch

from dawe_merge.merging.fisher import fisher_weighted_average
from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli


def test_weighted_average_by_hand():
    experts = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 6.0, 9.0])]
    fishers = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([3.0, 2.0, 0.0])]
    # entry 0: (1·1 + 3·3) / 4 = 2.5; entry 1: only the second expert counts; entry 2: no Fisher, the plain mean
    assert torch.allclose(fisher_weighted_average(experts, fishers), torch.tensor([2.5, 6.0, 6.0]))


def test_fisher_of_a_logistic_model_by_hand(monkeypatch):
    """For logits (0, w·x) the gradient of log p(ŷ) in w is x·(1[ŷ=1] − σ(w·x)); its square is the Fisher entry."""
    from dawe_merge.methods.fisher import FisherMerging

    class Body(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([0.5]))

        def forward(self, x):
            return torch.stack([torch.zeros_like(x[:, 0]), x[:, 0] * self.w], dim=-1)

    class Pool:
        def prepare_inputs(self, batch, device):
            return {"x": batch["x"]}

    method = FisherMerging.__new__(FisherMerging)
    torch.nn.Module.__init__(method)
    method.modelpool, method.labels, method.num_examples = Pool(), "predicted", 3
    method.heads = torch.nn.ModuleDict({"t": torch.nn.Identity()})
    xs = torch.tensor([[1.0], [-2.0], [4.0], [9.0]])
    fisher, seen = method._diagonal_fisher(Body(), "t", [{"x": xs, "index": torch.arange(4)}], {"w"})
    expected = 0.0
    for x in xs[:3, 0]:
        p1 = torch.sigmoid(0.5 * x)
        y = 1.0 if p1 > 0.5 else 0.0  # the model's own prediction
        expected += (x * (y - p1)) ** 2
    assert seen == 3 and fisher["w"].item() == pytest.approx((expected / 3).item(), rel=1e-6)


@pytest.mark.parametrize("labels", ["predicted", "true"])
def test_fisher_merging_through_the_cli(labels, tiny_pool, data_config, tmp_path):
    run_cli(["test", "--config", str(data_config), "--config", str(ROOT / "configs/methods/fisher_merging.yaml"), *pool_overrides(tiny_pool),
             *quiet_trainer(tmp_path), "--model.init_args.num_examples", "6", "--model.init_args.labels", labels])  # fmt: skip
    report = json.loads((tmp_path / "results/tiny/fisher_merging/report.json").read_text())
    assert 0.0 <= report["average"]["accuracy"] <= 1.0 and set(TASKS) <= set(report)
    assert report["computed_from"]["examples_per_task"] == {t: 6 for t in TASKS}
    assert ("no label read" in report["computed_from"]["data"]) == (labels == "predicted")


def test_normalized_fishers_give_every_expert_the_same_total_by_hand():
    from dawe_merge.merging.fisher import normalized_fishers

    fishers = [{"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([0.0, 0.0])}, {"a": torch.tensor([10.0, 0.0]), "b": torch.tensor([30.0, 0.0])}]
    # means over the four entries: 1.0 and 10.0
    out = normalized_fishers(fishers)
    assert torch.equal(out[0]["a"], torch.tensor([1.0, 3.0])) and torch.equal(out[1]["b"], torch.tensor([3.0, 0.0]))
    experts = [torch.tensor([0.0, 0.0]), torch.tensor([4.0, 4.0])]
    # entry 0 of "a": weights 1 and 1 → the mean 2; entry 1: weights 3 and 0 → the first expert's 0
    merged = fisher_weighted_average(experts, [out[0]["a"], out[1]["a"]])
    assert torch.equal(merged, torch.tensor([2.0, 0.0]))
    assert normalized_fishers([{"a": torch.zeros(2)}])[0]["a"].eq(0).all()


def test_normalize_through_the_cli_records_each_experts_mean_fisher(tiny_pool, data_config, tmp_path):
    run_cli(["test", "--config", str(data_config), "--config", str(ROOT / "configs/methods/fisher_merging.yaml"), *pool_overrides(tiny_pool),
             *quiet_trainer(tmp_path), "--model.init_args.num_examples", "4", "--model.init_args.normalize", "true"])  # fmt: skip
    report = json.loads((tmp_path / "results/tiny/fisher_merging/report.json").read_text())
    assert "normalised to mean 1" in report["computed_from"]["data"]
    means = report["computed_from"]["mean_fisher_per_task"]
    assert set(means) == set(TASKS) and all(m > 0 for m in means.values())
