"""Bad inputs through the real CLI: one `error:` line, exit code 2, and every earlier result left as it was.

Each case runs against a results folder holding a sentinel report (and comparison table) of an earlier
run; the failing run must leave both byte-for-byte untouched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from src.run_checks import user_facing_cause
from tests.conftest import ROOT, TASKS, perturbed_copy, pool_overrides, quiet_trainer, run_cli, small_data_config

SENTINEL = {"method": "task_arithmetic", **{t: {"accuracy": 0.5, "loss": 1.0} for t in TASKS}, "average": {"accuracy": 0.5, "loss": 1.0}}


def _sentinel(results: Path) -> dict[Path, bytes]:
    for method in ("task_arithmetic", "ties", "dawe_task_wise", "pretrained"):
        folder = results / "tiny" / method
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps({**SENTINEL, "method": method}))
    (results / "tiny/README.md").write_text("# the comparison table of earlier runs\n")
    return {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MERGE_DEBUG"}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def _method(name: str) -> str:
    return str(ROOT / f"configs/methods/{name}.yaml")


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
        "empty task list": (["test", "--config", data, "--config", _method("pretrained"), "--data.init_args.tasks", "[]", *common], "at least one task"),
        "duplicate task names": (["test", "--config", data, "--config", _method("pretrained"), "--data.init_args.tasks",
                                  '[{"name": "rotten_tomatoes"}, {"name": "rotten_tomatoes"}]', *common], "must be unique"),  # fmt: skip
        "malformed YAML": (["test", "--config", data, "--config", str(bad_yaml), *common], f"Config file '{bad_yaml}' is not valid YAML at line 4"),
        "missing config file": (["test", "--config", data, "--config", str(tmp_path / "nope.yaml"), *common], "nope.yaml' given to --config does not exist"),
        "missing checkpoint": (["test", "--config", data, "--config", _method("dawe_task_wise"), "--ckpt_path", str(tmp_path / "gone.ckpt"), *common],
                               "gone.ckpt' does not exist"),  # fmt: skip
        "text file as checkpoint": (["test", "--config", data, "--config", _method("dawe_task_wise"), "--ckpt_path", str(text_ckpt), *common],
                                    "is not a readable checkpoint"),  # fmt: skip
        "checkpoint for a static method": (["test", "--config", data, "--config", _method("ties"), "--ckpt_path", str(empty_ckpt), *common],
                                           "nothing trained to load"),  # fmt: skip
        "negative lr": (["fit", "--config", data, "--config", _method("adamerging_task_wise"), "--model.init_args.lr", "-1", *common], "lr must be > 0.0"),
        "zero lr": (["fit", "--config", data, "--config", _method("dawe_task_wise"), "--model.init_args.lr", "0", *common], "lr must be > 0.0"),
        "batch size 0": (["test", "--config", data, "--config", _method("pretrained"), "--data.init_args.batch_size", "0", *common], "batch_size must be >= 1"),
        "no adaptation steps": (["fit", "--config", data, "--config", _method("adamerging_task_wise"), "--trainer.max_steps", "0", *common],
                                "max_steps is 0"),  # fmt: skip
        "unknown class_path": (["test", "--config", data, "--config", _method("task_arithmetic"), "--model.class_path", "src.methods.TaskArithmetc", *common],
                               "model.class_path: 'src.methods.TaskArithmetc' does not exist; did you mean 'src.methods.TaskArithmetic'?"),  # fmt: skip
        "misspelled init argument": (["test", "--config", data, "--config", _method("task_arithmetic"), "--model.init_args.scaling_factr", "0.3", *common],
                                     "model.init_args.scaling_factr: src.methods.TaskArithmetic has no option 'scaling_factr'; did you mean 'scaling_factor'?"),  # fmt: skip
        "wrong mode": (["fit", "--config", data, "--config", _method("dawe_task_wise"), "--model.init_args.mode", "taskwise", *common],
                       "model.init_args.mode: 'taskwise' is not one of task_wise, layer_wise; did you mean 'task_wise'?"),  # fmt: skip
        "misspelled trainer option": (["test", "--config", data, "--config", _method("pretrained"), "--trainer.max_stepz", "3", *common],
                                      "unknown option --trainer.max_stepz; did you mean 'max_steps'?"),  # fmt: skip
    }


CASES = [
    "empty task list", "duplicate task names", "malformed YAML", "missing config file", "missing checkpoint", "text file as checkpoint",
    "checkpoint for a static method", "negative lr", "zero lr", "batch size 0", "no adaptation steps",
    "unknown class_path", "misspelled init argument", "wrong mode", "misspelled trainer option",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_keeps_results(case, tiny_pool, tmp_path):
    args, expected = _cases(tmp_path, tiny_pool)[case]
    before = _sentinel(tmp_path / "results")
    proc = _cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr[-2000:]
    assert {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()} == before


# ---- bad weights: in-process, the same one-line errors (user_facing_cause finds them) ----------------------------------
def _experts_with(tmp_path: Path, pool: dict, damage) -> dict:
    experts = tmp_path / "experts"
    for i, task in enumerate(TASKS):
        perturbed_copy(Path(pool["pretrained"]), experts / task, seed=i + 1)
    damage(experts / TASKS[1] / "model.safetensors")
    return dict(pool, experts_dir=str(experts))


def _fails(args: list[str], tmp_path: Path, match: str) -> None:
    before = _sentinel(tmp_path / "results")
    with pytest.raises(Exception) as info:
        run_cli(args)
    cause = user_facing_cause(info.value)
    assert cause is not None, f"not a user-facing error: {info.value!r}"
    assert match in str(cause), str(cause)
    assert {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()} == before


def _poison(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(path)
    name = sorted(weights)[3]
    weights[name][0] = float("nan")
    save_file(weights, path, metadata={"format": "pt"})


def _pretrained_copy(pool: dict):
    def damage(path: Path) -> None:
        path.write_bytes((Path(pool["pretrained"]) / "model.safetensors").read_bytes())

    return damage


@pytest.mark.parametrize(
    "damage, method, match",
    [
        (_poison, "task_arithmetic", "has NaN/inf values"),
        (_poison, "individual", "has NaN/inf values"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "ties", "Cannot read the expert of task 'election_tweets'"),
        ("pretrained copy", "adamerging_layer_wise", "identical to the pretrained model"),
    ],
    ids=["nan-static", "nan-individual", "truncated", "zero-task-vector"],
)
def test_bad_expert_weights_are_named(damage, method, match, tiny_pool, tmp_path):
    damage = _pretrained_copy(tiny_pool) if damage == "pretrained copy" else damage
    pool = _experts_with(tmp_path, tiny_pool, damage)
    stage = "fit" if method.startswith("adamerging") else "test"
    args = [stage, "--config", str(small_data_config(tmp_path / "data.yaml")), "--config", _method(method), *pool_overrides(pool), *quiet_trainer(tmp_path)]
    _fails(args + (["--trainer.max_steps", "1"] if stage == "fit" else []), tmp_path, match)


def test_unwritable_results_folder_fails_before_evaluating(tiny_pool, tmp_path):
    blocked = tmp_path / "results_file"
    blocked.write_text("a file where the results folder should be")
    args = ["test", "--config", str(small_data_config(tmp_path / "data.yaml")), "--config", _method("pretrained"), *pool_overrides(tiny_pool),
            *quiet_trainer(tmp_path), "--results_dir", str(blocked)]  # fmt: skip
    with pytest.raises(Exception) as info:
        run_cli(args)
    cause = user_facing_cause(info.value)
    assert cause is not None and "cannot be written" in str(cause) and "--results_dir" in str(cause)


def test_corrupt_report_of_another_method_is_named_and_skipped(tiny_pool, tmp_path, capsys):
    results = tmp_path / "results/tiny"
    _sentinel(tmp_path / "results")
    (results / "ties/report.json").write_text("")  # a 0-byte report, as a full disk leaves
    run_cli(["test", "--config", str(small_data_config(tmp_path / "data.yaml")), "--config", _method("pretrained"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)])
    assert capsys.readouterr().err.count(f"skipping unreadable report {results / 'ties/report.json'}") == 1  # named once
    table = (results / "README.md").read_text()
    assert "| pretrained |" in table and "| ties |" not in table and "| task_arithmetic |" in table


def test_non_finite_report_is_refused_and_nothing_is_overwritten(tmp_path):
    from src.reports.writer import InvalidReportError, write_report

    before = _sentinel(tmp_path)
    report = {t: {"accuracy": 0.5, "loss": float("nan")} for t in TASKS} | {"average": {"accuracy": 0.5, "loss": float("nan")}}
    with pytest.raises(InvalidReportError, match="non-finite metrics .*loss"):
        write_report(report, tmp_path, "tiny", "task_arithmetic", "cmd", 0)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    ok = {t: {"accuracy": 0.25, "loss": 2.0} for t in TASKS} | {"average": {"accuracy": 0.25, "loss": 2.0}}
    out = write_report(ok, tmp_path, "tiny", "task_arithmetic", "cmd", 0)
    assert json.loads((out / "report.json").read_text())["average"]["accuracy"] == 0.25
    assert not list(tmp_path.rglob(".tmp-*")), "no temporary file is left behind"


def test_fit_config_and_test_config_do_not_overwrite_each_other(tiny_pool, tmp_path):
    data = str(small_data_config(tmp_path / "data.yaml"))
    fit = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"]
    run_cli(["fit", "--config", data, "--config", _method("adamerging_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path), *fit])
    ckpt = tmp_path / "runs/checkpoints/last.ckpt"
    run_cli(["test", "--config", data, "--config", _method("adamerging_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path), "--ckpt_path", str(ckpt)])
    folder = tmp_path / "results/tiny/adamerging_task_wise"
    fit_config = yaml.safe_load((folder / "fit_config.yaml").read_text())
    test_config = yaml.safe_load((folder / "test_config.yaml").read_text())
    assert fit_config["trainer"]["max_steps"] == 2 and test_config["ckpt_path"] == str(ckpt) and fit_config.get("ckpt_path") is None
    assert torch.load(ckpt, weights_only=True)["merge_metadata"]["method"] == "adamerging"


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
    args = ["fit", "--config", data, "--config", _method("adamerging_task_wise"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path),
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


def test_experts_dir_null_on_the_command_line_is_no_folder(tiny_pool, tmp_path):
    data = str(small_data_config(tmp_path / "data.yaml"))
    cli = run_cli(["test", "--config", data, "--config", _method("pretrained"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path),
                   "--model.init_args.modelpool.init_args.experts_dir", "null"])  # fmt: skip
    assert cli.model.modelpool.experts_dir is None


def test_help_describes_the_project_and_every_method_option():
    import re

    proc = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Train-and-merge" in proc.stdout and "Lightning Trainer command line tool" not in proc.stdout
    for method in ("DAWE", "AdaMerging", "TaskArithmetic", "TiesMerging", "ExpertFineTuning"):
        proc = subprocess.run([sys.executable, "main.py", "test", "--model.help", f"src.methods.{method}"], cwd=ROOT, capture_output=True,
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
