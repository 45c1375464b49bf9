"""End-to-end smoke runs of the CLI on tiny random models and small real tasks."""
from __future__ import annotations

import json

import pytest
import yaml

from dawe_merge.methods.registry import methods
from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli

STATIC = {e.name: e.class_path for e in methods() if not e.adapts}


@pytest.mark.parametrize("method", list(STATIC))
def test_static_method_writes_report(method, tiny_pool, data_config, tmp_path):
    cli = run_cli(
        ["test", "--config", str(data_config), "--config", str(ROOT / f"configs/methods/{method}.yaml")]
        + pool_overrides(tiny_pool)
        + quiet_trainer(tmp_path)
    )
    report = json.loads((tmp_path / "results/tiny" / method / "report.json").read_text())
    assert set(TASKS) <= set(report)
    accs = [report[t]["accuracy"] for t in TASKS]
    assert report["average"]["accuracy"] == pytest.approx(sum(accs) / len(accs))
    assert report["method"] == method and report["seed"] == 0 and "main.py test" in report["command"]
    assert cli.trainer.callback_metrics["test/avg/acc"].item() == pytest.approx(report["average"]["accuracy"])
    table = (tmp_path / "results/tiny/README.md").read_text()
    assert f"| {method} |" in table
    # the resolved config lives beside the report it produced, never in the working directory
    saved = yaml.safe_load((tmp_path / "results/tiny" / method / "test_config.yaml").read_text())
    assert saved["model"]["class_path"] == STATIC[method] and saved["data"]["init_args"]["benchmark"] == "tiny"
    assert not (ROOT / "config.yaml").exists() and not list((tmp_path / "runs").rglob("config.yaml"))


def test_expert_fit_saves_loadable_expert(tiny_pool, data_config, tmp_path):
    experts_dir = tmp_path / "new_experts"
    run_cli(
        ["fit", "--config", str(data_config), "--config", str(ROOT / "configs/methods/expert.yaml")]
        + pool_overrides(tiny_pool)
        + ["--model.init_args.modelpool.init_args.experts_dir", str(experts_dir), "--model.init_args.task", "election_tweets"]
        + quiet_trainer(tmp_path)
        + ["--trainer.max_steps", "2"]
    )
    from transformers import AutoModel

    saved = AutoModel.from_pretrained(experts_dir / "election_tweets")
    pretrained = AutoModel.from_pretrained(tiny_pool["pretrained"])
    changed = [n for n, p in saved.named_parameters() if not (p == dict(pretrained.named_parameters())[n]).all()]
    assert changed, "fine-tuning must change the backbone"
    fit_config = yaml.safe_load((tmp_path / "results/tiny/expert_election_tweets/fit_config.yaml").read_text())
    assert fit_config["model"]["init_args"]["task"] == "election_tweets"


def test_taskpool_evaluate_matches_cli_report(tiny_pool, data_config, tmp_path):

    from dawe_merge.families.text import TextModelPool, TextTask, TextTaskPool
    from dawe_merge.methods import TaskArithmetic

    run_cli(["test", "--config", str(data_config), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml")] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))
    cli_report = json.loads((tmp_path / "results/tiny/task_arithmetic/report.json").read_text())
    data_args = yaml.safe_load(data_config.read_text())["data"]["init_args"]
    taskpool = TextTaskPool(**{**data_args, "tasks": [TextTask(**t) for t in data_args["tasks"]]})
    model = TaskArithmetic(TextModelPool(tiny_pool["pretrained"], experts_dir=tiny_pool["experts_dir"], max_length=32))
    report = taskpool.evaluate(model, results_dir=str(tmp_path / "evaluated"), accelerator="cpu", enable_progress_bar=False)
    assert list(report) == [*TASKS, "average"]
    written = json.loads((tmp_path / "evaluated/tiny/task_arithmetic/report.json").read_text())  # the files `test` writes, by the same path
    assert {p.name for p in (tmp_path / "evaluated/tiny/task_arithmetic").iterdir()} >= {"report.json", "report.csv", "report.md"}
    assert (tmp_path / "evaluated/tiny/README.md").is_file() and written["command"] == "TextTaskPool.evaluate"
    for key in report:
        assert report[key]["accuracy"] == pytest.approx(cli_report[key]["accuracy"]) == written[key]["accuracy"]
        assert report[key]["loss"] == pytest.approx(cli_report[key]["loss"], abs=1e-6)


def test_run_folders_follow_benchmark_and_method_unless_given(tiny_pool, data_config, tmp_path, monkeypatch):
    """Method configs name no run folder: a run of any benchmark never writes into another benchmark's runs."""
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(data_config), "--config", str(ROOT / "configs/methods/adamerging_task_wise.yaml"), *pool_overrides(tiny_pool),
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--results_dir", str(tmp_path / "results"),
            "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"]  # fmt: skip
    run_cli(args)
    assert (tmp_path / "runs/tiny/adamerging_task_wise/checkpoints/last.ckpt").is_file()
    run_cli([*args, "--trainer.default_root_dir", str(tmp_path / "mine")])
    assert (tmp_path / "mine/checkpoints/last.ckpt").is_file()
