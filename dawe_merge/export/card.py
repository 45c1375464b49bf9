"""The model card of an export: `merge_info.json` for programs, `README.md` (a hub model card) for people.

The card is built with huggingface_hub's card classes, so its front matter is what the hub validates:
`base_model` only when the pretrained model is a hub id (a local path or a package reference means
nothing on the hub), `library_name` says what loads the folder, the tags name the method and the tasks.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from huggingface_hub import ModelCard, ModelCardData

from dawe_merge.library_versions import recorded_versions
from dawe_merge.paths import is_hub_id

RECORDED_PACKAGES = ("dawe-merge", "torch", "lightning", "transformers", "peft", "datasets", "jsonargparse", "huggingface_hub")


def environment() -> dict:
    """The versions that made an export (what a recipe needs to make it again)."""
    return recorded_versions(RECORDED_PACKAGES)


def card_data(info: dict, library: str) -> ModelCardData:
    pretrained = info["pretrained"]
    tasks = [task["name"] for task in info["tasks"]]
    return ModelCardData(
        library_name=library,
        base_model=pretrained if isinstance(pretrained, str) and is_hub_id(pretrained) else None,
        tags=["merge", "model-merging", "dawe-merge", info["method"]],
        merged_tasks=tasks,
    )


def model_card(info: dict, usage: str, library: str) -> ModelCard:
    """README.md: front matter the hub reads, then what was merged, how, how well, how to load it and make it again."""
    lines = [
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
    if info.get("preprocessing"):
        lines += ["", f"Inputs are prepared as in the merge's evaluation: {json.dumps(info['preprocessing'])}."]
    if info.get("coefficients") is not None:
        lines += ["", "What the method learned:", "", "```json", json.dumps(info["coefficients"]), "```"]
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
    if info.get("recipe"):
        lines += ["", "## Make it again", "", f"`{info['recipe']}` is the resolved config of the run that wrote this folder:", "", "```bash",
                  f"merge-cli export --config {info['recipe']} --export_dir <folder>", "```"]  # fmt: skip
    if info.get("command"):
        lines += ["", "It was written by:", "", "```bash", info["command"], "```"]
    lines += ["", f"Environment: {json.dumps(info['environment'])}", ""]
    return ModelCard(f"---\n{card_data(info, library).to_yaml()}\n---\n\n" + "\n".join(lines))


def created() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
