"""User-facing failures give one clear message (what is wrong, how to fix it), not a deep traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from src.errors import UserFacingError
from tests.conftest import ROOT, make_tiny_bert, perturbed_copy, pool_overrides, quiet_trainer, run_cli, small_data_config


def test_shape_mismatched_expert_names_expert_tensor_and_shapes(tiny_pool, tmp_path):
    experts = tmp_path / "experts"
    perturbed_copy(tiny_pool["pretrained"], experts / "rotten_tomatoes", seed=1)
    make_tiny_bert(experts / "election_tweets", hidden=48)  # another width: every matrix differs in shape
    data = small_data_config(tmp_path / "data.yaml")
    pool = dict(tiny_pool, experts_dir=str(experts))
    with pytest.raises(UserFacingError, match=r"election_tweets.*tensor '.*' has shape \(.*48.*\).*pretrained model's has shape"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml")] + pool_overrides(pool) + quiet_trainer(tmp_path))


def test_unknown_task_name_lists_the_known_corpora(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", tasks=["rotten_tomatoes", "no_such_task"])
    with pytest.raises(UserFacingError, match="unknown corpus 'no_such_task'.*newsgroups.*hub_path"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/pretrained.yaml")] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))


def test_task_without_expert_says_how_to_make_it(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", tasks=["rotten_tomatoes", "reuters_r8"])
    with pytest.raises(UserFacingError, match="reuters_r8.*not found.*main.py fit"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml")] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))


def test_hub_name_while_offline_points_to_local_dirs(tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    with pytest.raises(UserFacingError, match="hub is offline.*local"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/pretrained.yaml"),
                 "--model.init_args.modelpool.init_args.pretrained", "sentence-transformers/all-MiniLM-L6-v2"] + quiet_trainer(tmp_path))  # fmt: skip


def test_main_prints_one_line_error_not_traceback(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", tasks=["no_such_task"])
    env = {k: v for k, v in os.environ.items() if k != "MERGE_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "main.py", "test", "--config", str(data), "--config", "configs/methods/pretrained.yaml", *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "error: Task 'no_such_task': unknown corpus" in proc.stderr
    assert "Traceback" not in proc.stderr
