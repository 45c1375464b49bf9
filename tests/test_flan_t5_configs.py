"""The paper's Flan-T5 configs, instantiated and evaluated through the real code path with tiny random stand-ins.

As for CLIP (test_paper_configs.py), the stand-ins are written into a Hugging Face cache folder under the hub
ids the configs name and the run is offline: a 2-layer T5, eight random LoRA adapters per model size, and a
one-layer 384-d SentenceTransformer for msmarco-MiniLM-L12-cos-v5. GLUE cannot be downloaded: each task's
hub_path is pointed at a small `save_to_disk` copy with GLUE's columns and splits, so the configs' templates,
label words and split names are checked against the real column layout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from torch import nn

from dawe_merge.methods.registry import methods
from tests.conftest import ROOT, make_tiny_bert
from tests.hub_cache import sentence_model
from tests.test_paper_configs import cache_model
from tests.test_seq2seq_family import make_tiny_t5
from tests.test_seq2seq_generation import lora_expert

pytestmark = pytest.mark.slow

GLUE_TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"]
COLUMNS = {"cola": ["sentence"], "mnli": ["premise", "hypothesis"], "mrpc": ["sentence1", "sentence2"], "qnli": ["question", "sentence"],
           "qqp": ["question1", "question2"], "rte": ["sentence1", "sentence2"], "sst2": ["sentence"], "stsb": ["sentence1", "sentence2"]}  # fmt: skip


def fake_glue(root: Path) -> Path:
    """One `save_to_disk` folder per GLUE configuration: its text columns, `label`, and its splits (MNLI: validation_matched)."""
    for task, columns in COLUMNS.items():
        n = 6
        rows = {c: [f"{c} number {i} of {task}" for i in range(n)] for c in columns}
        rows["label"] = [i * 0.9 for i in range(n)] if task == "stsb" else [i % (3 if task == "mnli" else 2) for i in range(n)]
        rows["idx"] = list(range(n))
        split = datasets.Dataset.from_dict(rows)
        test = "validation_matched" if task == "mnli" else "validation"
        datasets.DatasetDict({"train": split, test: split}).save_to_disk(root / task)
    return root


def tiny_msmarco(path: Path) -> Path:
    """A SentenceTransformer with the reference extractor's width (384) and one random layer."""
    return sentence_model(make_tiny_bert(path.parent / "msmarco_bert", hidden=384, layers=1), 384, path)


@pytest.fixture(scope="module")
def flan_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("flan_hub")
    cache = root / "cache"
    for size in ("base", "large"):
        t5 = make_tiny_t5(root / size)
        cache_model(cache, f"google/flan-t5-{size}", t5)
        for seed, task in enumerate(GLUE_TASKS):
            cache_model(cache, f"tanganke/flan-t5-{size}_glue-{task}_lora-16", lora_expert(t5, root / f"{size}_{task}", seed))
    cache_model(cache, "sentence-transformers/msmarco-MiniLM-L12-cos-v5", tiny_msmarco(root / "msmarco"))
    # the original code's format: a whole pickled Sequential, 384-d features, one coding per task
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(384, 384), nn.ReLU(), nn.Linear(384, 8)), root / "reference_task_wise.pt")
    return {"cache": cache, "glue": fake_glue(root / "glue"), "reference": root / "reference_task_wise.pt"}


SCRIPT = r"""
import json, sys
import torch
import dawe_merge.families.seq2seq, dawe_merge.methods
from dawe_merge.cli import cli_main

glue, reference = sys.argv[1], sys.argv[2]
quiet = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]
dawe = ["configs/schedules/dawe_reference.yaml"]
from dawe_merge.methods.registry import methods as registered
methods = [(e.name, dawe if e.class_path.endswith(".DAWE") else []) for e in registered()]  # DAWE with the reference schedule


def configured(bench, method, overlays, extra=()):
    args = ["--config", f"configs/benchmarks/flan_t5_{bench}.yaml", "--config", f"configs/methods/{method}.yaml"]
    for overlay in overlays:
        args += ["--config", overlay]
    cli = cli_main([*args, *quiet, *extra], run=False)
    for task in cli.datamodule.tasks:  # GLUE from the local copies, same configurations and splits
        task.hub_path = f"{glue}/{task.hub_config}"
    return cli


def evaluated(cli):
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return cli.model.test_report


out = []
for bench in ("base", "large"):
    for method, overlays in methods:
        cli = configured(bench, method, overlays)
        pool, fx = cli.model.modelpool, getattr(cli.model, "feature_extractor", None)
        tasks = cli.datamodule.tasks
        out.append({"bench": bench, "method": type(cli.model).__name__, "pretrained": pool.pretrained, "experts": pool.experts,
                    "tasks": [t.name for t in tasks], "splits": [t.test_split for t in tasks], "evaluate_by": pool.evaluate_by,
                    "features": None if fx is None else [fx.name, fx.dim]})
    model = pool.load_pretrained()
    vectors = pool.task_vectors([t.name for t in tasks], model)
    out.append({"bench": bench, "merged": sorted({n.split(".")[-2] for n in vectors[0]}), "tensors": len(vectors[0])})

report = evaluated(configured("base", "task_arithmetic", []))
out.append({"evaluated": "task_arithmetic", "report": report})
cli = configured("base", "dawe_task_wise", dawe, ["--model.init_args.hypernetwork_init", reference])
report = evaluated(cli)
features = torch.randn(5, 384, generator=torch.Generator().manual_seed(1))
mine = cli.model.hypernetwork(features)
theirs = torch.load(reference, weights_only=False)(features)
out.append({"evaluated": "dawe_task_wise", "report": report, "max_diff": float((mine - theirs).abs().max()),
            "per_sample": cli.model.per_sample_eval})
print("RESULT " + json.dumps(out))
"""


def test_every_flan_t5_config_instantiates_evaluates_and_loads_the_reference_hypernetwork(flan_cache):
    env = {**os.environ, "HF_HUB_CACHE": str(flan_cache["cache"]), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-c", SCRIPT, str(flan_cache["glue"]), str(flan_cache["reference"])]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.split("RESULT ", 1)[1])
    runs = [r for r in rows if "method" in r]
    assert len(runs) == 2 * len(methods())  # every method of the registry, both sizes
    for row in runs:
        size = row["bench"]
        assert row["pretrained"] == f"google/flan-t5-{size}" and row["tasks"] == GLUE_TASKS and row["evaluate_by"] == "generation"
        assert row["experts"] == {t: f"tanganke/flan-t5-{size}_glue-{t}_lora-16" for t in GLUE_TASKS}
        assert row["splits"] == ["validation", "validation_matched", *["validation"] * 6]
        if row["method"] == "DAWE":
            assert row["features"] == ["sentence-transformers/msmarco-MiniLM-L12-cos-v5", 384]
    for row in (r for r in rows if "merged" in r):
        # 2 layers: encoder self-attention q, v; decoder self- and cross-attention q, v
        assert row["merged"] == ["q", "v"] and row["tensors"] == 2 * 2 + 2 * 4
    evaluated = {r["evaluated"]: r for r in rows if "evaluated" in r}
    for name, row in evaluated.items():
        report = row["report"]
        assert set(report) == {*GLUE_TASKS, "average"}, name
        assert report["stsb"]["spearman"] == report["stsb"]["accuracy"] and "spearman" not in report["cola"]
        assert all(0.0 <= report[t]["accuracy"] <= 1.0 for t in GLUE_TASKS if t != "stsb")
    assert evaluated["dawe_task_wise"]["max_diff"] < 1e-6 and evaluated["dawe_task_wise"]["per_sample"]
