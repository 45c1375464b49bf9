"""FusionBench's GPT-2 GLUE setup through the CLI as a user runs it: `gpt2` and the seven `tanganke/gpt2_<task>` experts
(tiny random stand-ins under those ids, each with its own head, MNLI's three classes) and `nyu-mll/glue` from a
real-layout cache, with the hub offline and online-but-unreachable."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.hub_cache import GPT2_TASKS, fill_gpt2_hub, hub_environment

pytestmark = pytest.mark.slow

SCRIPT = r"""
import json, sys
import dawe_merge.methods
from dawe_merge.cli import cli_main

out = sys.argv[1]
common = ["--config", "configs/benchmarks/gpt2_glue.yaml", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
          "--results_dir", f"{out}/results", "--data.init_args.batch_size", "4", "--data.init_args.adapt_batch_size", "4"]
reports = {}
for method in ("pretrained", "individual", "task_arithmetic", "dawe_task_wise"):
    args = [*common, "--config", f"configs/methods/{method}.yaml"]
    if method.startswith("dawe"):
        run = f"{out}/runs/{method}"
        cli_main(["fit", *args, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0", "--trainer.default_root_dir", run])
        args += ["--trainer.default_root_dir", run, "--ckpt_path", f"{run}/checkpoints/last.ckpt"]
    cli = cli_main(["test", *args])
    reports[method] = cli.model.test_report
    heads = {t: h.num_classes for t, h in cli.model.heads.items()}
print("RESULT " + json.dumps({"reports": reports, "heads": heads}))
"""


@pytest.fixture(scope="module")
def gpt2_hub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gpt2_hub")
    fill_gpt2_hub(root)
    return root


@pytest.mark.parametrize("online", [False, True])
def test_gpt2_glue_paper_config_runs_from_the_hub_ids(online, gpt2_hub, tmp_path):
    env = hub_environment(gpt2_hub / "cache", online=online, root=tmp_path)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["heads"] == GPT2_TASKS, "each task read by its own expert's head, MNLI with three classes"
    for method, report in result["reports"].items():
        assert list(report) == [*GPT2_TASKS, "average"], method
        assert all(0.0 <= report[t]["accuracy"] <= 1.0 for t in GPT2_TASKS)
    assert result["reports"]["individual"] != result["reports"]["pretrained"]
