"""DARE against hand computations: survivors are τ/(1-p), the drop rate holds, the expectation is τ, seeds repeat;
through the CLI, p = 0 is task arithmetic (and TIES) exactly."""
from __future__ import annotations

import json

import pytest
import torch

from dawe_merge.merging.dare import drop_and_rescale
from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli


def _vectors():
    g = torch.Generator().manual_seed(3)
    return [{"b": torch.randn(40, 50, generator=g), "a": torch.randn(300, generator=g)} for _ in range(2)]


def test_survivors_are_rescaled_and_the_rate_holds():
    vectors, p = _vectors(), 0.7
    for original, dropped in zip(vectors, drop_and_rescale(vectors, p, seed=1)):
        for name, value in original.items():
            kept = dropped[name] != 0
            assert torch.equal(dropped[name][kept], value[kept] / (1 - p))  # survivors: τ / (1 − p), exactly
            assert abs(kept.float().mean().item() - (1 - p)) < 0.05  # about 1 − p of the entries survive


def test_expected_value_is_the_task_vector():
    tau = {"w": torch.linspace(-1.0, 1.0, 50)}
    mean = torch.stack([drop_and_rescale([tau], 0.5, seed=s)[0]["w"] for s in range(4000)]).mean(0)
    # each entry's mean over 4000 masks: τ ± 4 standard errors (sd of one draw: |τ|)
    assert torch.all((mean - tau["w"]).abs() <= 4 * tau["w"].abs() / 4000**0.5 + 1e-6)


def test_seeded_and_order_independent():
    vectors = _vectors()
    first, again = drop_and_rescale(vectors, 0.5, seed=7), drop_and_rescale([dict(reversed(list(v.items()))) for v in vectors], 0.5, seed=7)
    assert all(torch.equal(x[n], y[n]) for x, y in zip(first, again) for n in x)  # the same masks, whatever the dict order
    other = drop_and_rescale(vectors, 0.5, seed=8)
    assert not torch.equal(first[0]["b"], other[0]["b"])
    assert all(torch.equal(x[n], v[n]) for x, v in zip(drop_and_rescale(vectors, 0.0), vectors) for n in v)  # p = 0 drops nothing
    with pytest.raises(ValueError, match="drop_rate"):
        drop_and_rescale(vectors, 1.0)


@pytest.mark.parametrize("merge", ["task_arithmetic", "ties"])
def test_dare_without_drops_is_its_merge(merge, tiny_pool, data_config, tmp_path):
    common = ["--config", str(data_config), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)]
    run_cli(["test", *common, "--config", str(ROOT / "configs/methods/dare.yaml"), "--model.init_args.drop_rate", "0", "--model.init_args.merge", merge])
    run_cli(["test", *common, "--config", str(ROOT / f"configs/methods/{merge}.yaml")])
    dare, reference = (json.loads((tmp_path / "results/tiny" / m / "report.json").read_text()) for m in ("dare", merge))
    for task in [*TASKS, "average"]:
        assert dare[task]["accuracy"] == reference[task]["accuracy"]
        assert dare[task]["loss"] == pytest.approx(reference[task]["loss"], abs=1e-6)
