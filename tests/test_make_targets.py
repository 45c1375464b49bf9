"""Every benchmark target of the Makefile fails when one of its stages fails: no table or timing printed as success.

Python is replaced by `false` (the make variable and the scripts' PY), and the models and experts point at empty
folders, so the first stage of each target fails; `make` must exit non-zero and print no stage time. RUNS points at a
temporary folder: each adaptive run starts by removing its run folder, which must never be the checkout's.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

TARGETS = {
    "main": "EXPERTS_DIR", "lora": "LORA_EXPERTS_DIR", "seqcls": "SEQCLS_EXPERTS_DIR", "vision": "VISION_MODELS", "t5": "T5_MODEL",
    "unseen": "UNSEEN_EXPERTS_DIR", "heldout": "HELDOUT_EXPERTS_DIR",
}  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_failing_stage_makes_the_target_fail(target, tmp_path):
    overrides = [f"{TARGETS[target]}={tmp_path / 'nothing'}", "PY=false", f"RUNS={tmp_path / 'runs'}"]
    # -o: the venv and the Debian data count as present (the suite runs inside them)
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "-o", "fashion-mnist", target, *overrides]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PY": "false"})
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert " took " not in proc.stdout, proc.stdout[-2000:]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["static", "adaptive", "main", "seeds", "entropy", "precision", "seeds BENCHMARK=t5_small",
                                    "entropy BENCHMARK=vision_small", "precision BENCHMARK=vision_small", "unseen", "heldout"])
def test_a_failing_method_after_the_experts_makes_the_target_fail(target, tmp_path):
    """The experts are there (empty stand-in files), so the method stage itself runs, and fails (for another
    BENCHMARK too: its runs are read as they are)."""
    experts, unseen, heldout = tmp_path / "experts", tmp_path / "experts_unseen", tmp_path / "experts_heldout"
    for folder, tasks in ((experts, ("newsgroups", "reuters_r8", "rotten_tomatoes", "election_tweets")),
                          (unseen, ("reuters_r52", "debates_party", "friends_speaker", "slo_opinion_topic")),
                          (heldout, ("health_tweets_source", "news_outlet", "commons_party", "bundestag_party"))):
        for task in tasks:
            (folder / task).mkdir(parents=True)
            (folder / task / "model.safetensors").touch()
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", *target.split(), f"EXPERTS_DIR={experts}",
               f"UNSEEN_EXPERTS_DIR={unseen}", f"HELDOUT_EXPERTS_DIR={heldout}", "PY=false", f"RUNS={tmp_path / 'runs'}"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PY": "false"})
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert " took " not in proc.stdout, proc.stdout[-2000:]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_entropy_rows_run_each_method_at_the_lr_chosen_with_entropy(tmp_path):
    """`make entropy` gives each task-wise method the lr chosen with entropy (DAWE 1e-4, AdaMerging 1e-3; their configs'
    were chosen with expert_kl, at which entropy overshoots) and 150 steps; Python is a stub that writes down its
    arguments."""
    log = tmp_path / "calls.txt"
    stub = tmp_path / "python"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "entropy", "BENCHMARK=vision_small", f"PY={stub}",
               f"RESULTS={tmp_path / 'results'}", f"RUNS={tmp_path / 'runs'}", "SEEDS=1"]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PY": str(stub)})
    fits = [line for line in log.read_text().splitlines() if line.startswith("main.py fit")]
    dawe = [line for line in fits if "methods/dawe_task_wise.yaml" in line]
    adamerging = [line for line in fits if "methods/adamerging_task_wise.yaml" in line]
    assert len(dawe) == len(adamerging) == 2, fits  # seed 0 and seed 1
    assert all(f"--trainer.default_root_dir {tmp_path / 'runs'}/vision_small/" in line for line in fits), fits
    for lines, lr in ((dawe, "1e-4"), (adamerging, "1e-3")):
        for line in lines:
            words = line.split()
            assert words.count("--model.init_args.lr") == 1 and words[words.index("--model.init_args.lr") + 1] == lr, line
            assert "--model.init_args.objective entropy" in line and "--trainer.max_steps 150" in line, line


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_clean_removes_the_runs_folder_it_is_pointed_at_and_nothing_beside_it(tmp_path):
    """RUNS moves every run folder and `make clean` follows it: cleaning runs kept elsewhere leaves the checkout's
    runs, and a user's files beside them stay. Run from tmp_path, so lightning_logs is tmp_path's too."""
    runs, logs, beside = tmp_path / "elsewhere_runs", tmp_path / "lightning_logs", tmp_path / "user_notes.txt"
    (runs / "text_minilm" / "dawe_task_wise").mkdir(parents=True)
    logs.mkdir()
    beside.write_text("kept")
    proc = subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "clean", f"RUNS={runs}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not runs.exists() and not logs.exists() and beside.read_text() == "kept"
    default = subprocess.run(["make", "--no-print-directory", "-n", "clean"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert default.stdout.split() == ["rm", "-rf", "runs", "lightning_logs"], default.stdout
