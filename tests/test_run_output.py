"""What a run prints (output to a file, as CI and `make … > log` see it): one results table per `test`, none of the
libraries' device lines, tips or loading bars unless --verbose; adaptation as one line per monitoring step k/N."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, pool_overrides

NOISE = ("GPU available", "💡 Tip", "Loading weights", "Seed set to", "Test metric")


def _main(tmp_path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), *args, "--trainer.default_root_dir", str(tmp_path / "runs"),
                           "--results_dir", str(tmp_path / "results")], capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_test_run_prints_one_table_and_the_libraries_only_with_verbose(tiny_pool, data_config, tmp_path):
    args = ["test", "--config", str(data_config), "--config", str(ROOT / "configs/methods/ties.yaml"), *pool_overrides(tiny_pool)]
    quiet = _main(tmp_path, *args)
    printed = quiet.stdout + quiet.stderr
    assert printed.count("| average |") == 1 and "# ties on tiny" in quiet.stdout, printed[-3000:]
    assert not [n for n in NOISE if n in printed], [n for n in NOISE if n in printed]
    loud = _main(tmp_path, *args, "--verbose", "true")
    printed = loud.stdout + loud.stderr
    assert all(n in printed for n in ("GPU available", "Test metric", "Seed set to")), printed[-3000:]


def test_adaptation_to_a_file_prints_a_line_per_monitoring_step(tiny_pool, data_config, tmp_path):
    args = ["fit", "--config", str(data_config), "--config", str(ROOT / "configs/methods/dawe_task_wise.yaml"), *pool_overrides(tiny_pool),
            "--features.init_args.model", tiny_pool["pretrained"], "--trainer.max_steps", "4", "--trainer.val_check_interval", "2",
            "--trainer.limit_val_batches", "1"]  # fmt: skip
    done = _main(tmp_path, *args)
    lines = [line for line in done.stderr.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in lines] == ["step 2/4", "step 4/4"], done.stderr[-3000:]
    assert all("train/expert_kl" in line and "val/avg/acc" in line for line in lines)
    assert "Epoch" not in done.stderr and "%|" not in done.stderr, "no bars in a file"
