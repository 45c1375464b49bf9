"""The paper configs run as a user runs them: hub ids, checkpoints in the formats the hub holds, the hub online or not.

A real-layout Hugging Face cache is filled with the committed old-format stand-ins (tests/fixtures/hub_formats:
written by transformers 4.46 and peft 0.11, `pytorch_model.bin`-only and safetensors-only models, peft adapters in
both file formats) under the ids the configs name, and with small hub-layout datasets (parquet files, a card that
declares the configurations, as GLUE and SVHN have). Every method then runs through the CLI twice: with
HF_HUB_OFFLINE=1, and with it unset while the hub cannot be reached — the cache must answer both, equally fast.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.hub_cache import cache_repo, hub_environment

pytestmark = pytest.mark.slow

FIXTURES = ROOT / "tests/fixtures/hub_formats"
CLIP_TASKS = ["sun397", "stanford_cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]
CLIP_DATASETS = {"sun397": "tanganke/sun397", "stanford_cars": "tanganke/stanford_cars", "resisc45": "tanganke/resisc45", "eurosat": "tanganke/eurosat",
                 "svhn": "ufldl-stanford/svhn", "gtsrb": "tanganke/gtsrb", "mnist": "ylecun/mnist", "dtd": "tanganke/dtd"}  # fmt: skip
GLUE_COLUMNS = {"cola": ["sentence"], "mnli": ["premise", "hypothesis"], "mrpc": ["sentence1", "sentence2"], "qnli": ["question", "sentence"],
                "qqp": ["question1", "question2"], "rte": ["sentence1", "sentence2"], "sst2": ["sentence"], "stsb": ["sentence1", "sentence2"]}  # fmt: skip


def _card(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose YAML declares each configuration's data files per split, as GLUE's and SVHN's do."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"] + [f"  - split: {s}\n    path: {p}" for s, p in splits.items()]
    return "\n".join([*lines, "---", ""])


def _image_split(n: int, seed: int, classes: int = 3) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"kind {c}" for c in "abc"[:classes]])})
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
    return datasets.Dataset.from_dict({"image": images, "label": [i % classes for i in range(n)]}, features=features)


def image_datasets(cache: Path, root: Path) -> None:
    for seed, (task, repo) in enumerate(CLIP_DATASETS.items()):
        folder = root / "datasets" / task
        prefix = "cropped_digits" if task == "svhn" else "data"
        for split, n in (("train", 5), ("test", 6)):
            (folder / prefix).mkdir(parents=True, exist_ok=True)
            _image_split(n, seed * 10 + n).to_parquet(str(folder / prefix / f"{split}-00000-of-00001.parquet"))
        if task == "svhn":  # two configurations, as the hub's SVHN: only cropped_digits is read
            (folder / "README.md").write_text(_card({"cropped_digits": {"train": "cropped_digits/train-*", "test": "cropped_digits/test-*"},
                                                      "full_numbers": {"train": "full_numbers/train-*"}}))  # fmt: skip
        cache_repo(cache, repo, folder, repo_type="dataset")


def glue_dataset(cache: Path, root: Path) -> None:
    folder, configs = root / "datasets" / "glue", {}
    for task, columns in GLUE_COLUMNS.items():
        test = "validation_matched" if task == "mnli" else "validation"
        for split, n in (("train", 5), (test, 6)):
            rows = {c: [f"{c} {i} of {task}" for i in range(n)] for c in columns}
            rows["label"] = [i * 0.9 for i in range(n)] if task == "stsb" else [i % (3 if task == "mnli" else 2) for i in range(n)]
            rows["idx"] = list(range(n))
            (folder / task).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(rows).to_parquet(str(folder / task / f"{split}-00000-of-00001.parquet"))
        configs[task] = {"train": f"{task}/train-*", test: f"{task}/{test}-*"}
    (folder / "README.md").write_text(_card(configs))
    cache_repo(cache, "nyu-mll/glue", folder, repo_type="dataset")


def tiny_sentence_model(root: Path) -> Path:
    """A SentenceTransformer (one-layer BERT on the fixtures' vocabulary, mean pooling) for msmarco-MiniLM's id."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizer

    bert = root / "bert"
    BertModel(BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24)).save_pretrained(bert)
    BertTokenizer(str(FIXTURES / "t5/vocab.txt")).save_pretrained(bert)
    SentenceTransformer(modules=[models.Transformer(str(bert), max_seq_length=64), models.Pooling(16)]).save(str(root / "st"))
    return root / "st"


@pytest.fixture(scope="module")
def user_hub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user_hub")
    cache = root / "cache"
    cache_repo(cache, "openai/clip-vit-base-patch32", FIXTURES / "clip")
    for task in CLIP_TASKS:
        repo_task = task.replace("_", "-")
        cache_repo(cache, f"tanganke/clip-vit-base-patch32_{repo_task}", FIXTURES / f"clip_{repo_task}")
    cache_repo(cache, "microsoft/resnet-18", FIXTURES / "resnet")
    cache_repo(cache, "google/flan-t5-base", FIXTURES / "t5")
    for task in GLUE_COLUMNS:
        cache_repo(cache, f"tanganke/flan-t5-base_glue-{task}_lora-16", FIXTURES / f"t5_lora_{task}")
    cache_repo(cache, "sentence-transformers/msmarco-MiniLM-L12-cos-v5", tiny_sentence_model(root / "msmarco"))
    image_datasets(cache, root)
    glue_dataset(cache, root)
    return root


SCRIPT = r"""
import json, sys, time
import src.families.seq2seq, src.families.vision, src.methods
from src.cli import cli_main

family, out = sys.argv[1], sys.argv[2]
bench, features = {"clip": ("configs/clip/vit_b32.yaml", "configs/clip/resnet18.yaml"),
                   "flan_t5": ("configs/flan_t5/base.yaml", "configs/flan_t5/msmarco_minilm.yaml")}[family]
common = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--results_dir", f"{out}/results",
          "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4", "--data.init_args.adapt_batch_size", "4"]
if family == "clip":
    common += ["--model.init_args.modelpool.init_args.head_cache_dir", f"{out}/heads"]
adapt = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "1", "--trainer.limit_val_batches", "1"]
runs = {}
for method in ("pretrained", "individual", "task_arithmetic", "adamerging_task_wise", "dawe_task_wise", "dawe_layer_wise"):
    args = ["--config", bench, "--config", f"configs/text/{method}.yaml"] + (["--config", features] if method.startswith("dawe") else []) + common
    start = time.perf_counter()
    if method.startswith(("adamerging", "dawe")):
        run = f"{out}/runs/{method}"
        cli_main(["fit", *args, *adapt, "--trainer.default_root_dir", run])
        cli = cli_main(["test", *args, "--trainer.default_root_dir", run, "--ckpt_path", f"{run}/checkpoints/last.ckpt"])
    else:
        cli = cli_main(["test", *args])
    runs[method] = {"report": cli.model.test_report, "seconds": time.perf_counter() - start}
print("RESULT " + json.dumps(runs))
"""


def run_family(family: str, online: bool, hub: Path, out: Path) -> dict:
    env = hub_environment(hub / "cache", online, out)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, family, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


@pytest.mark.parametrize("family", ["clip", "flan_t5"])
def test_every_method_runs_on_the_paper_config_online_and_offline_from_a_filled_cache(user_hub, family, tmp_path):
    offline = run_family(family, False, user_hub, tmp_path / "offline")
    online = run_family(family, True, user_hub, tmp_path / "online")
    tasks = CLIP_TASKS if family == "clip" else list(GLUE_COLUMNS)
    for method, run in offline.items():
        report = run["report"]
        assert set(report) == {*tasks, "average"}, method
        assert all(0.0 <= report[t]["accuracy"] <= 1.0 for t in tasks if t != "stsb"), method
        # the same files answer both ways: the same numbers
        for task in (*tasks, "average"):
            assert online[method]["report"][task]["accuracy"] == report[task]["accuracy"], (method, task)
            assert abs(online[method]["report"][task]["loss"] - report[task]["loss"]) < 1e-6, (method, task)
        # no retries against an unreachable hub: online costs what offline does, give or take start-up noise
        assert online[method]["seconds"] < run["seconds"] + 5.0, (method, online[method]["seconds"], run["seconds"])
    # the experts are the hub's: adapters (flan-t5) and full vision towers (clip) change the answers
    assert offline["individual"]["report"] != offline["pretrained"]["report"]


@pytest.mark.parametrize("family,method", [("flan_t5", "task_arithmetic"), ("clip", "task_arithmetic")])
def test_main_py_online_with_the_hub_out_of_reach(user_hub, family, method, tmp_path):
    """`python main.py test` itself, as the failing report ran it (exit 2: adapters loaded as full models)."""
    bench = {"clip": "configs/clip/vit_b32.yaml", "flan_t5": "configs/flan_t5/base.yaml"}[family]
    command = [sys.executable, "main.py", "test", "--config", bench, "--config", f"configs/text/{method}.yaml", "--trainer.accelerator", "cpu",
               "--trainer.enable_progress_bar", "false", "--results_dir", str(tmp_path / "results"), "--data.init_args.num_workers", "0",
               "--model.init_args.modelpool.init_args.head_cache_dir" if family == "clip" else "--seed_everything",
               str(tmp_path / "heads") if family == "clip" else "0"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=hub_environment(user_hub / "cache", True, tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(next((tmp_path / "results").rglob("report.json")).read_text())
    assert "average" in report and time.perf_counter() - start < 120


def test_a_hub_adapter_given_as_the_pretrained_model_is_refused_with_the_fix(user_hub, tmp_path):
    env = hub_environment(user_hub / "cache", True, tmp_path)
    code = "from src.paths import resolve_model_path; resolve_model_path('tanganke/flan-t5-base_glue-cola_lora-16')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "is a LoRA adapter (adapter_config.json), not a full model" in proc.stderr
