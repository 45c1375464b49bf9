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

from dawe_merge.reports.atomic import write_text_atomic

RULE = (
    "highest average validation accuracy (each task's split held out from its training data) over every candidate "
    "and monitored step, step 0 = the start (task arithmetic) included; ties: fewer steps, then the earlier candidate"
)

STATIC_RULE = (
    "highest average validation accuracy (each task's split held out from its training data) over the candidates, each "
    "merged once; ties: the earlier candidate"
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
    return {**best, "start_average": _start(candidates[best["candidate"]]["curve"])}


def _start(curve: list[dict]) -> float | None:
    """The curve's step-0 average (task arithmetic), None when step 0 was not monitored."""
    return next((r["average"] for r in curve if r["step"] == 0), None)


def selection_table(candidates: list[dict], chosen: dict, number: str = "{:.2f}", label: str = "step") -> list[str]:
    """Markdown: one row per candidate, its value (%) at each monitored step (a validation average, or a gain with
    number="{:+.2f}"); the chosen cell in bold."""
    steps = sorted({int(r["step"]) for c in candidates for r in c["curve"]})
    keys = list(candidates[0]["setting"]) if candidates else []
    lines = ["| " + " | ".join([*keys, *(f"{label} {s}" for s in steps)]) + " |", "|" + "---|" * (len(keys) + len(steps))]
    for index, candidate in enumerate(candidates):
        by_step = {int(r["step"]): r["average"] for r in candidate["curve"]}
        cells = []
        for step in steps:
            text = number.format(100 * by_step[step]) if step in by_step else "–"
            cells.append(f"**{text}**" if (index, step) == (chosen["candidate"], chosen["step"]) else text)
        lines.append("| " + " | ".join([*(str(candidate["setting"][k]) for k in keys), *cells]) + " |")
    return lines


def write_selection(out: Path, method: str, benchmark: str, candidates: list[dict], command: str,
                    task_arithmetic: float | None = None) -> dict:  # fmt: skip
    """Write <out>/<method>.json (every curve, the choice, the rule) and <out>/<method>.md; return the choice.

    task_arithmetic: task arithmetic's validation average on the same splits, for a static method, whose curves are one
    point each (the merge itself) and so carry no start to measure a gain from.
    """
    chosen = choose(candidates)
    if task_arithmetic is not None:
        chosen["start_average"] = task_arithmetic
    out.mkdir(parents=True, exist_ok=True)
    rule = RULE if task_arithmetic is None else STATIC_RULE
    record = {"method": method, "benchmark": benchmark, "rule": rule, "chosen": chosen, "candidates": candidates, "command": command}
    if task_arithmetic is not None:
        record["task_arithmetic_average"] = task_arithmetic
    write_text_atomic(out / f"{method}.json", json.dumps(record, indent=1) + "\n")
    setting = ", ".join(f"{k} = {v}" for k, v in chosen["setting"].items())
    start = "" if chosen["start_average"] is None else f"; its start (step 0, task arithmetic): {100 * chosen['start_average']:.2f}"
    if task_arithmetic is not None:
        start = f"; task arithmetic on the same splits: {100 * task_arithmetic:.2f}"
    text = [
        f"# Settings of {method} on {benchmark}, chosen on validation data", "",
        f"Chosen: {setting}, step {chosen['step']} — validation average {100 * chosen['average']:.2f}{start}.", "",
        f"Rule: {rule}. No test label was read: the runs monitored the validation splits only.", "",
        "Average validation accuracy (%) of each candidate at each monitored step:", "", *selection_table(candidates, chosen), "",
        f"Command: `{command}`", "",
    ]  # fmt: skip
    write_text_atomic(out / f"{method}.md", "\n".join(text))
    return chosen


ACROSS_RULE = (
    "highest mean, over the benchmarks, of the validation average's gain over that benchmark's start (step 0, task "
    "arithmetic) at the same (setting, step), among the settings and steps every benchmark ran; ties: fewer steps, then "
    "the earlier candidate"
)


def choose_across(records: list[dict]) -> dict:
    """One setting for every benchmark: records are write_selection's JSON of one method on several benchmarks.

    A default serves tasks nobody has tuned on, so it is the (setting, step) whose validation gain over task arithmetic
    is best on average over the benchmarks, not the best on any one of them. Returns choose()'s dict (averages are then
    mean gains) plus "gains": {benchmark: that benchmark's gain at the chosen setting and step}.
    """
    if any(not {"method", "benchmark", "candidates"} <= set(r) for r in records):
        raise ValueError("Each input must be a <method>.json written by scripts/select_settings.py on one benchmark.")
    if len({r["method"] for r in records}) != 1:
        raise ValueError(f"Selections of different methods cannot be combined: {sorted({r['method'] for r in records})}.")
    benchmarks = [r["benchmark"] for r in records]
    if len(set(benchmarks)) != len(benchmarks):
        raise ValueError(f"A benchmark is given twice ({benchmarks}): each would count twice in the mean; give each once.")
    gains = [{_key(c["setting"]): _gains(c["curve"], r.get("task_arithmetic_average")) for c in r["candidates"]} for r in records]
    common = [c["setting"] for c in records[0]["candidates"] if all(_key(c["setting"]) in g for g in gains)]
    if not common:
        raise ValueError("No setting was run on every benchmark: run scripts/select_settings.py with the same grid on each.")
    candidates = []
    for setting in common:
        key = _key(setting)
        steps = set.intersection(*(set(g[key]) for g in gains))
        candidates.append({"setting": setting, "curve": [{"step": s, "average": sum(g[key][s] for g in gains) / len(gains)} for s in sorted(steps)]})
    chosen = choose(candidates)
    chosen.pop("start_average")  # every start is a gain of 0 here
    key = _key(chosen["setting"])
    return {**chosen, "gains": {b: g[key][chosen["step"]] for b, g in zip(benchmarks, gains)}, "candidates": candidates}


def _key(setting: dict) -> str:
    """A setting as a hashable key that does not depend on the order of its options."""
    return json.dumps(setting, sort_keys=True)


def _gains(curve: list[dict], task_arithmetic: float | None = None) -> dict[int, float]:
    """Each step's gain over the start: the curve's step 0, or task arithmetic's average for a static method."""
    start = _start(curve) if task_arithmetic is None else task_arithmetic
    if start is None:
        raise ValueError("A selection curve has no step 0 (the start): its runs were made without num_sanity_val_steps -1.")
    return {int(r["step"]): r["average"] - start for r in curve}


def write_across(out: Path, records: list[dict], command: str, sources: list[Path]) -> dict:
    """Write <out>/<method>.json and .md: the setting chosen over several benchmarks' selections, and each one's gain.

    `sources` are the per-benchmark selection files read, so that the .md links the tables it was chosen from."""
    chosen = choose_across(records)
    method, candidates, benchmarks = records[0]["method"], chosen.pop("candidates"), list(chosen["gains"])
    out.mkdir(parents=True, exist_ok=True)
    record = {"method": method, "benchmarks": benchmarks, "rule": ACROSS_RULE, "chosen": chosen, "mean_gain_curves": candidates, "command": command}
    write_text_atomic(out / f"{method}.json", json.dumps(record, indent=1) + "\n")
    setting = ", ".join(f"{k} = {v}" for k, v in chosen["setting"].items())
    each = ", ".join(f"{b} {100 * g:+.2f}" for b, g in chosen["gains"].items())
    text = [
        f"# Settings of {method}, chosen on the validation data of {len(records)} benchmarks", "",
        f"Chosen: {setting}, step {chosen['step']} — mean validation gain over task arithmetic {100 * chosen['average']:+.2f} points ({each}).", "",
        f"Rule: {ACROSS_RULE}. No test label was read: each benchmark's selection monitored its validation splits only "
        f"({', '.join(str(p.with_suffix('.md')) for p in sources)}).", "",
        "Mean validation gain (points) of each candidate at each monitored step:", "",
        *selection_table(candidates, chosen, number="{:+.2f}", label="gain at step"), "",
        f"Command: `{command}`", "",
    ]  # fmt: skip
    write_text_atomic(out / f"{method}.md", "\n".join(text))
    return chosen
