"""AdaMerging and DAWE through the CLI on tiny models: init equals task arithmetic, checkpoints, labels."""
from __future__ import annotations

import json

import datasets
import pytest
import torch
import yaml

from dawe_merge.methods.adaptive import IncompatibleCheckpointError
from dawe_merge.methods.registry import method_names
from tests.conftest import MINILM_FEATURES, ROOT, TASKS, TEXT_POOL, pool_overrides, quiet_trainer, run_cli

FIT_STEPS = ["--trainer.max_steps", "3", "--trainer.val_check_interval", "3", "--trainer.limit_val_batches", "1"]


def _report(tmp_path, method):
    return json.loads((tmp_path / "results/tiny" / method / "report.json").read_text())


def test_dawe_at_init_predicts_task_arithmetic(tiny_pool, data_config, tmp_path):
    for method in ("task_arithmetic", "dawe_task_wise"):
        run_cli(["test", "--config", str(data_config), "--config", str(ROOT / f"configs/methods/{method}.yaml")] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))
    ta, dawe = _report(tmp_path, "task_arithmetic"), _report(tmp_path, "dawe_task_wise_start")  # no --ckpt_path: the start
    for task in TASKS:
        assert dawe[task]["accuracy"] == ta[task]["accuracy"]
        assert dawe[task]["loss"] == pytest.approx(ta[task]["loss"], abs=1e-5)


@pytest.mark.parametrize("method", method_names(adaptive=True))
def test_adapt_then_test_from_checkpoint(method, tiny_pool, data_config, tmp_path):
    args = ["--config", str(data_config), "--config", str(ROOT / f"configs/methods/{method}.yaml")] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path)
    cli = run_cli(["fit"] + args + FIT_STEPS)
    trainable = {n for n, p in cli.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("lambdas", "hypernetwork")) for n in trainable)
    ckpt_path = tmp_path / "runs/checkpoints/last.ckpt"
    checkpoint = torch.load(ckpt_path, weights_only=False)
    kept = set(checkpoint["state_dict"])
    assert trainable <= kept, "checkpoints hold the trainable part"
    # and, besides it, only the standardisation statistics that define DAWE's hypernetwork
    assert {n.rsplit(".", 1)[-1] for n in kept - trainable} <= {"feature_mean", "feature_std"}
    if method.startswith("dawe"):  # with standardised features, their statistics; on raw features, nothing else
        standardized = cli.model.hypernetwork.standardize
        assert kept - trainable == ({"hypernetwork.feature_mean", "hypernetwork.feature_std"} if standardized else set())
    assert checkpoint["merge_metadata"]["tasks"] == TASKS
    run_cli(["test"] + args + ["--ckpt_path", str(ckpt_path)])
    assert _report(tmp_path, method)["average"]["accuracy"] >= 0.0
    assert (tmp_path / "results/tiny" / method / "adaptation.csv").exists()


def test_task_wise_checkpoint_refused_by_layer_wise_run(tiny_pool, data_config, tmp_path):
    base = ["--config", str(data_config)] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path)
    run_cli(["fit", "--config", str(ROOT / "configs/methods/dawe_task_wise.yaml")] + base + FIT_STEPS)
    with pytest.raises(IncompatibleCheckpointError, match="task_wise.*layer_wise"):
        run_cli(["test", "--config", str(ROOT / "configs/methods/dawe_layer_wise.yaml")] + base + ["--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt")])


def _saved_tasks(root, shuffle_labels: bool):
    """Two tasks saved with save_to_disk; optionally with the test labels permuted."""
    g = torch.Generator().manual_seed(0)
    tasks = []
    for name, words in (("animals", ["cat", "dog", "cow"]), ("colours", ["red", "blue", "green"])):
        texts = [f"the {words[i % 3]} number {i} is here" for i in range(12)]
        labels = [i % 3 for i in range(12)]
        test_labels = [labels[i] for i in torch.randperm(12, generator=g)] if shuffle_labels else labels
        features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=words)})
        dd = datasets.DatasetDict(
            {"train": datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features),
             "test": datasets.Dataset.from_dict({"text": texts, "label": test_labels}, features=features)}
        )  # fmt: skip
        dd.save_to_disk(root / name)
        tasks.append({"name": name, "hub_path": str(root / name), "max_test": 12})
    return tasks


@pytest.mark.parametrize("method", ["adamerging_layer_wise", "dawe_task_wise"])
def test_shuffled_labels_leave_adapted_coefficients_unchanged(method, tiny_pool, tmp_path):
    results, monitored = [], []
    for shuffle in (False, True):
        root = tmp_path / f"shuffle_{shuffle}"
        root.mkdir()
        config = {"model": {"init_args": {"modelpool": TEXT_POOL}}, "features": MINILM_FEATURES, "data": {"class_path": "dawe_merge.families.text.TextTaskPool", "init_args": {"benchmark": "tiny", "adapt_batch_size": 4, "tasks": _saved_tasks(root, shuffle)}}}
        (root / "data.yaml").write_text(yaml.safe_dump(config))
        pool = {"pretrained": tiny_pool["pretrained"], "experts_dir": tiny_pool["experts_dir"]}
        overrides = pool_overrides(pool) + [
            "--model.init_args.modelpool.init_args.experts", json.dumps({"animals": f"{pool['experts_dir']}/rotten_tomatoes", "colours": f"{pool['experts_dir']}/election_tweets"})
        ]  # fmt: skip
        cli = run_cli(["fit", "--config", str(root / "data.yaml"), "--config", str(ROOT / f"configs/methods/{method}.yaml")] + overrides + quiet_trainer(root) + FIT_STEPS)
        results.append({n: p.detach().clone() for n, p in cli.model.named_parameters() if p.requires_grad})
        monitored.append((cli.model.history, cli.model.best_validation))
    # monitoring reads the validation splits (held out from the training data): the curve, and the state
    # best_validation would keep, are the same whatever the test labels say
    assert monitored[0][0] == monitored[1][0] and [row["step"] for row in monitored[0][0]] == [0.0, 3.0]
    best = [m[1] for m in monitored]
    assert best[0]["step"] == best[1]["step"] and best[0]["average"] == best[1]["average"]
    assert all(torch.equal(best[0]["state"][k], best[1]["state"][k]) for k in best[0]["state"])
    assert results[0].keys() == results[1].keys()
    for name in results[0]:
        torch.testing.assert_close(results[0][name], results[1][name], atol=0, rtol=0)
    # both start at a known point: lambdas at 0.3, the hypernetwork's last weight at 0
    last_weight = [n for n in results[0] if n.startswith("hypernetwork.") and n.endswith("weight")][-1:]
    start = {"lambdas": 0.3, **{n: 0.0 for n in last_weight}}
    moved = any(bool((results[0][n] != v).any()) for n, v in start.items() if n in results[0])
    assert moved, "adaptation must actually change the coefficients for this test to mean anything"


@pytest.mark.parametrize("method", ["adamerging_layer_wise", "dawe_task_wise"])
def test_backward_per_task_gives_the_same_adaptation(method, tiny_pool, data_config, tmp_path):
    """Per-task backward with accumulated gradients reaches the same trainable state as one backward over all tasks."""
    states = []
    for per_task in ("false", "true"):
        cli = run_cli(["fit", "--config", str(data_config), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *pool_overrides(tiny_pool),
                       *quiet_trainer(tmp_path / per_task), *FIT_STEPS, "--model.init_args.backward_per_task", per_task])  # fmt: skip
        assert cli.model.automatic_optimization == (per_task == "false") and cli.trainer.global_step == 3
        states.append({n: p.detach().clone() for n, p in cli.model.named_parameters() if p.requires_grad})
    start = 0.3
    assert any(bool((v != start).any()) for n, v in states[0].items() if n == "lambdas" or n.endswith("net.0.bias")), "adaptation must move"
    for name in states[0]:
        torch.testing.assert_close(states[1][name], states[0][name], atol=1e-6, rtol=1e-5)
