"""What the package wrote before it was renamed from `src` still loads, with one warning, and gives the same outputs.

tests/fixtures/old_format was written by that code (its make_old_format.py): a saved run config and a DAWE folder
naming `src.…` classes, a Lightning checkpoint, the checkpoint's report and the folder's answers on four inputs.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import torch

from tests.conftest import ROOT, TASKS

OLD = ROOT / "tests/fixtures/old_format"
POOL = ["--model.init_args.modelpool.init_args.pretrained", str(OLD / "models/pretrained"),
        "--model.init_args.modelpool.init_args.experts_dir", str(OLD / "models/experts")]  # fmt: skip


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "OldClassPathWarning" in line]


def test_an_old_run_config_and_its_checkpoint_give_the_report_they_gave(tmp_path):
    """`test --config <the fit's saved config> --ckpt_path <its checkpoint>`, as a user reruns an earlier run."""
    command = [sys.executable, "main.py", "test", "--config", str(OLD / "fit_config.yaml"), *POOL, "--ckpt_path", str(OLD / "dawe_task_wise.ckpt"),
               "--trainer.default_root_dir", str(tmp_path / "run"), "--results_dir", str(tmp_path / "results")]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_warnings(proc.stderr)) == 1 and "read as 'dawe_merge" in _warnings(proc.stderr)[0], _warnings(proc.stderr)
    report = json.loads(next((tmp_path / "results").rglob("report.json")).read_text())
    before = json.loads((OLD / "report.json").read_text())
    for task in (*TASKS, "average"):
        assert report[task]["accuracy"] == before[task]["accuracy"], task
        assert abs(report[task]["loss"] - before[task]["loss"]) < 1e-5, task
    saved = (next((tmp_path / "results").rglob("test_config.yaml"))).read_text()
    assert "class_path: dawe_merge." in saved and "class_path: src." not in saved, "what is written again names the new package"


def test_an_old_dawe_folder_loads_and_answers_as_it_did(tmp_path):
    folder = shutil.copytree(OLD / "dawe_export", tmp_path / "dawe_export")
    config = json.loads((folder / "dawe_config.json").read_text())
    assert config["modelpool"]["class_path"].startswith("src."), "the folder names the old package"
    config["modelpool"]["init_args"]["pretrained"] = str(OLD / "models/pretrained")  # it was written on another machine
    (folder / "dawe_config.json").write_text(json.dumps(config))
    answers = json.loads((OLD / "dawe_export_answers.json").read_text())
    code = ("import json, sys, torch\nfrom dawe_merge.export import load_dawe\nmodel = load_dawe(sys.argv[1])\ninputs = json.loads(sys.argv[2])\n"
            "with torch.no_grad():\n    print('ANSWERS ' + json.dumps({t: model(inputs, task=t).tolist() for t in json.loads(sys.argv[3])}))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, str(folder), json.dumps(answers["inputs"]), json.dumps(TASKS)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_warnings(proc.stderr)) == 1, proc.stderr[-2000:]
    got = json.loads(proc.stdout.split("ANSWERS ", 1)[1])
    for task in TASKS:
        torch.testing.assert_close(torch.tensor(got[task]), torch.tensor(answers["logits"][task]), rtol=1e-5, atol=1e-5)


def test_old_class_paths_alias_the_same_classes_and_a_plain_import_of_src_still_fails(tmp_path):
    code = ("import importlib\nimport dawe_merge.methods as new\nold = importlib.import_module('src.methods')\n"
            "assert old is new and old.DAWE is new.DAWE\nprint('SAME')")  # fmt: skip
    proc = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "OldClassPathWarning" in proc.stderr, "the warning is a warning (made an error here), not silence"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "SAME" in proc.stdout, proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-c", "import src"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "No module named 'src'" in proc.stderr
