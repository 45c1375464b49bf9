"""The model card of an export: `merge_info.json` for programs, `README.md` (hub model-card layout) for people."""
from __future__ import annotations

import json
import platform
from datetime import datetime, timezone

import torch
import transformers


def environment() -> dict:
    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def card_markdown(info: dict, usage: str) -> str:
    """README.md: YAML front matter the hub reads, then what was merged, how, how well, and how to load it."""
    lines = [
        "---",
        "tags: [merge, model-merging, " + info["method"] + "]",
        f"base_model: {info['pretrained']}",
        "---",
        "",
        f"# {info['method']} merge of {len(info['tasks'])} experts",
        "",
        f"Made by `{info['class_path']}` from the pretrained model `{info['pretrained']}` "
        f"(weights digest `{info['pretrained_digest'][:16]}…`) on {info['created']}.",
        "",
        "## Load it",
        "",
        "```python",
        usage,
        "```",
        "",
        "## Method and parameters",
        "",
        "```json",
        json.dumps(info["parameters"], indent=2),
        "```",
    ]
    if info.get("coefficients") is not None:
        lines += ["", "Learned coefficients (rows: task vectors; columns: merged tensors, one column when task-wise):", "", "```json",
                  json.dumps(info["coefficients"]), "```"]  # fmt: skip
    lines += ["", "## Experts", "", "| task | reference | weight files (sha256) |", "|---|---|---|"]
    for task, expert in info["experts"].items():
        files = "<br>".join(f"{name}: `{digest[:16]}…`" for name, digest in expert.get("files", {}).items()) or expert.get("note", "")
        lines.append(f"| {task} | `{expert['reference']}` | {files} |")
    report = info.get("report")
    if report:
        lines += ["", "## Evaluation (the TaskPool's test sets)", "", "| task | accuracy | loss |", "|---|---|---|"]
        lines += [f"| {task} | {100 * v['accuracy']:.2f} | {v['loss']:.4f} |" for task, v in report.items() if isinstance(v, dict) and "accuracy" in v]
    else:
        lines += ["", "No evaluation was run before this export."]
    if info.get("command"):
        lines += ["", "## Made with", "", "```bash", info["command"], "```"]
    lines += ["", f"Environment: {json.dumps(info['environment'])}", ""]
    return "\n".join(lines)


def created() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
