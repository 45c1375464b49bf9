"""scripts/fit_expert.sh (what `make main` fine-tunes each expert with): the expert is saved where the benchmark reads
it, and the run's checkpoints, kept only to resume a killed fine-tuning, are gone once it is saved."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, pool_overrides


def test_a_finished_expert_leaves_no_resume_checkpoints(tiny_pool, data_config, tmp_path):
    run = tmp_path / "runs/experts/election_tweets"
    args = [str(ROOT / "scripts/fit_expert.sh"), "election_tweets", str(run), "--config", str(data_config), "--", *pool_overrides(tiny_pool),
            "--model.init_args.modelpool.init_args.experts_dir", str(tmp_path / "experts"), "--trainer.accelerator", "cpu",
            "--trainer.max_steps", "2", "--trainer.callbacks.init_args.every_n_train_steps", "1", "--results_dir", str(tmp_path / "results")]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PY": sys.executable})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "experts/election_tweets/model.safetensors").is_file()
    assert run.is_dir() and not (run / "checkpoints").exists()
