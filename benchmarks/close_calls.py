"""How far from a tie does bf16 decide differently from fp32? The data behind the default `close_call_ulps`.

Each benchmark and method is validated under bf16 autocast with every input decided again in fp32 (threshold
`.inf`), so its validation.json counts, per margin bucket (spacings of bf16 at the top logits), the inputs and the
decisions fp32 changed:

    python main.py validate --config configs/benchmarks/text_minilm.yaml --config configs/methods/dawe_task_wise.yaml \
        --ckpt_path runs/text_minilm/dawe_task_wise/checkpoints/last.ckpt --trainer.precision bf16-mixed \
        --trainer.callbacks+=dawe_merge.methods.CloseCallThreshold --trainer.callbacks.ulps=.inf \
        --data.init_args.benchmark text_minilm_close_calls
    python benchmarks/close_calls.py results/*_close_calls

This prints, for each threshold, the share of inputs a bf16 run would decide again and the changes it would keep,
per benchmark folder and method, from validation data only (no test split is read).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dawe_merge.metrics.close_calls import ULP_EDGES  # noqa: E402


def counts(folder: Path) -> dict[str, dict[str, list[int]]]:
    """{method: summed bucket counts over its tasks} from the folder's validation.json files."""
    out = {}
    for path in sorted(folder.glob("*/validation.json")):
        report = json.loads(path.read_text())["report"]
        tasks = [v["close_calls"] for v in report.values() if "close_calls" in v]
        if tasks:
            out[path.parent.name] = {k: [sum(t[k][i] for t in tasks) for i in range(len(ULP_EDGES) + 1)] for k in ("inputs", "changed")}
    return out


def summary(folders: list[str]) -> None:
    print("| benchmark | method | inputs | changed by fp32 | " + " | ".join(f"≤ {e:g} ulps" for e in ULP_EDGES) + " |")
    print("|" + "---|" * (len(ULP_EDGES) + 4))
    for folder in map(Path, folders):
        methods = counts(folder)
        every = {k: [sum(c[k][i] for c in methods.values()) for i in range(len(ULP_EDGES) + 1)] for k in ("inputs", "changed")}
        for method, c in [*methods.items(), ("all methods", every)]:
            total, changed = sum(c["inputs"]), sum(c["changed"])
            if not total:
                continue
            cells = [f"{100 * sum(c['inputs'][: i + 1]) / total:.1f}% / {sum(c['changed'][i + 1 :])}" for i in range(len(ULP_EDGES))]
            print(f"| {folder.name.removesuffix('_close_calls')} | {method} | {total} | {changed} | " + " | ".join(cells) + " |")
    print("\nEach threshold cell: the share of inputs decided again in fp32 / the decisions fp32 changed that stay bf16's.")


if __name__ == "__main__":
    summary(sys.argv[1:])
