"""Choosing an adaptive method's settings from validation curves alone, and writing down the choice and why.

Each candidate setting was adapted once with monitoring on the validation splits (held out from the training
data); its curve holds the average validation accuracy at step 0 (the start, task arithmetic) and at every
monitoring point after it. The choice is the (setting, step) pair with the highest average validation accuracy;
ties go to fewer steps, then to the earlier candidate in grid order, so the simplest equal answer wins. No test
label enters: the curves are all this module sees.
"""
from __future__ import annotations

import json
from pathlib import Path

from src.reports.atomic import write_text_atomic

RULE = (
    "highest average validation accuracy (each task's split held out from its training data) over every candidate "
    "and monitored step, step 0 = the start (task arithmetic) included; ties: fewer steps, then the earlier candidate"
)


def choose(candidates: list[dict]) -> dict:
    """candidates: [{"setting": {...}, "curve": [{"step": s, "average": a, ...}, ...]}] → the chosen one, with its step.

    Returns {"candidate": index, "setting", "step", "average", "start_average"} (start: that candidate's step 0).
    """
    best_key, best = None, None
    for index, candidate in enumerate(candidates):
        for row in candidate["curve"]:
            key = (row["average"], -row["step"], -index)  # higher accuracy, then fewer steps, then earlier candidate
            if best_key is None or key > best_key:
                best_key, best = key, {"candidate": index, "setting": candidate["setting"], "step": int(row["step"]), "average": row["average"]}
    if best is None:
        raise ValueError("No candidate has a monitored step: run with validation monitoring (limit_val_batches > 0).")
    start = next((r["average"] for r in candidates[best["candidate"]]["curve"] if r["step"] == 0), None)
    return {**best, "start_average": start}


def selection_table(candidates: list[dict], chosen: dict) -> list[str]:
    """Markdown: one row per candidate, its validation average (%) at each monitored step; the chosen cell in bold."""
    steps = sorted({int(r["step"]) for c in candidates for r in c["curve"]})
    keys = list(candidates[0]["setting"]) if candidates else []
    lines = ["| " + " | ".join([*keys, *(f"step {s}" for s in steps)]) + " |", "|" + "---|" * (len(keys) + len(steps))]
    for index, candidate in enumerate(candidates):
        by_step = {int(r["step"]): r["average"] for r in candidate["curve"]}
        cells = []
        for step in steps:
            text = f"{100 * by_step[step]:.2f}" if step in by_step else "–"
            cells.append(f"**{text}**" if (index, step) == (chosen["candidate"], chosen["step"]) else text)
        lines.append("| " + " | ".join([*(str(candidate["setting"][k]) for k in keys), *cells]) + " |")
    return lines


def write_selection(out: Path, method: str, benchmark: str, candidates: list[dict], command: str) -> dict:
    """Write <out>/<method>.json (every curve, the choice, the rule) and <out>/<method>.md; return the choice."""
    chosen = choose(candidates)
    out.mkdir(parents=True, exist_ok=True)
    record = {"method": method, "benchmark": benchmark, "rule": RULE, "chosen": chosen, "candidates": candidates, "command": command}
    write_text_atomic(out / f"{method}.json", json.dumps(record, indent=1) + "\n")
    setting = ", ".join(f"{k} = {v}" for k, v in chosen["setting"].items())
    start = "" if chosen["start_average"] is None else f"; its start (step 0, task arithmetic): {100 * chosen['start_average']:.2f}"
    text = [
        f"# Settings of {method} on {benchmark}, chosen on validation data", "",
        f"Chosen: {setting}, step {chosen['step']} — validation average {100 * chosen['average']:.2f}{start}.", "",
        f"Rule: {RULE}. No test label was read: the runs monitored the validation splits only.", "",
        "Average validation accuracy (%) of each candidate at each monitored step:", "", *selection_table(candidates, chosen), "",
        f"Command: `{command}`", "",
    ]  # fmt: skip
    write_text_atomic(out / f"{method}.md", "\n".join(text))
    return chosen
