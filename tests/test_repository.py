"""The committed tree holds everything the project runs from.

An ignore pattern meant for build folders (`models/` for the offline benchmarks' pretrained models) once also
matched `dawe_merge/models/`, so a new module there was never committed and a fresh clone could not import it while every
local run passed. This asks git itself which project files it would leave out.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("dawe_merge", "tests", "scripts", "benchmarks", "docs", ".ci")  # results/: only its tables are tracked (.gitignore)
SOURCE_SUFFIXES = {".py", ".yaml", ".yml", ".sh", ".md", ".json", ".csv", ".txt", ""}


def project_files() -> list[str]:
    files = [ROOT / name for name in ("main.py", "Makefile", "README.md", "pyproject.toml", "constraints.txt")]
    for folder in SOURCE_FOLDERS:
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES]
    return [str(p.relative_to(ROOT)) for p in files if "__pycache__" not in p.parts and p.exists()]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_no_project_file_is_ignored_by_git():
    files = project_files()
    assert "dawe_merge/models/hypernetwork.py" in files  # a file of the folder that was once left out is among those asked about
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(files), text=True,
        capture_output=True,
    ).stdout.split()
    assert not ignored, f"git ignores project files (fix .gitignore, then `git add` them): {ignored}"


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_build_folders_stay_ignored():
    build_outputs = ["models/vision_small/clip/model.safetensors", "experts/text_minilm/reuters_r8/model.safetensors",
                     "runs/text_minilm/dawe_task_wise/checkpoints/last.ckpt", "lightning_logs/version_0/hparams.yaml"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(build_outputs), text=True,
        capture_output=True,
    ).stdout.split()
    assert ignored == build_outputs


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_the_tracked_tree_stays_small():
    """The repository holds code and tables: every run's plots, CSVs and configs are regenerated and ignored."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    size = sum((ROOT / f).stat().st_size for f in tracked if f and (ROOT / f).is_file())
    assert size < 10 * 2**20, f"tracked files hold {size / 2**20:.1f} MiB"
    assert not [f for f in tracked if f.startswith("results/") and f.endswith((".csv", ".yaml"))]
