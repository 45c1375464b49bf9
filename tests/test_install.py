"""The project installs as a package (`make setup`: pip install -e .), so nothing has to run from the repository root.

Every run here starts outside the checkout with PYTHONPATH unset: `src` must come from the installation, not from
the working directory, or a broken pyproject.toml would pass unnoticed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

BIN = Path(sys.executable).parent  # the venv's bin/ (not resolved: the venv's python is a link to the base interpreter)
# what the wheel is built from: pyproject.toml names requirements.txt (dependencies) and README.md (readme)
BUILD_INPUTS = ("pyproject.toml", "requirements.txt", "README.md", "src")


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

    # src.console.main, not bare cli_main: a missing config is one error line and exit 2
    proc = _run_outside([str(cli), "test", "--config", str(tmp_path / "missing.yaml")], tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: " in proc.stderr and "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_the_wheel_holds_the_package_and_the_console_script(tmp_path):
    """Built from a copy of the build inputs, so the checkout gets no build/ or *.egg-info from the test."""
    project = tmp_path / "project"
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            project.mkdir(exist_ok=True)
            shutil.copy2(source, project / name)
    out = tmp_path / "wheels"
    proc = _run_outside([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(project)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [wheel] = out.glob("dawe_merge-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read("dawe_merge-0.1.0.dist-info/entry_points.txt").decode()
        metadata = archive.read("dawe_merge-0.1.0.dist-info/METADATA").decode()
    assert {"src/cli.py", "src/console.py"} <= names
    modules = {p.relative_to(project).as_posix() for p in (project / "src").rglob("*.py")}
    assert modules <= names, f"modules left out of the wheel (a folder without __init__.py?): {sorted(modules - names)[:10]}"
    assert "merge-cli = src.console:main" in entry_points
    assert "Requires-Dist: torch==" in metadata and "#" not in "".join(line for line in metadata.splitlines() if line.startswith("Requires-Dist"))


def test_a_benchmark_script_runs_by_path_from_outside_the_repository(tmp_path):
    """It imports `src` from the installation and its helpers from its own folder: no sys.path edits."""
    script = ROOT / "benchmarks" / "dawe_throughput.py"
    proc = _run_outside([sys.executable, str(script), "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: dawe_throughput.py" in proc.stdout
