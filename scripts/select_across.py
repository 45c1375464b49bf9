"""Choose one setting of an adaptive method for every benchmark, from the selections made on each.

Each input is a `<method>.json` written by scripts/select_settings.py on one benchmark (same method, same grid);
the choice is the (setting, step) with the best validation gain over task arithmetic averaged over the benchmarks
(dawe_merge/reports/selection.py has the rule). A default must serve tasks nobody tuned on: a setting that wins on one
benchmark and gains little elsewhere loses to one that gains on all of them on average (the mean can still keep a
setting below task arithmetic on one benchmark: each choice's .md lists every benchmark's gain). No test label enters.

    python scripts/select_across.py results/text_minilm/selection/dawe_task_wise.json \
        results/text_minilm_lora/selection/dawe_task_wise.json results/vision_small/selection/dawe_task_wise.json

Writes <out>/<method>.json and .md (default out: results/selection).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from dawe_merge.reports.selection import write_across


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("selections", nargs="+", type=Path, help="<method>.json of scripts/select_settings.py, one per benchmark")
    parser.add_argument("--out", type=Path, default=Path("results/selection"), help="folder for <method>.json and .md")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.selections if not p.is_file()]
    if missing:
        parser.error(f"no such selection file: {', '.join(missing)} (scripts/select_settings.py writes them)")
    records = [json.loads(p.read_text()) for p in args.selections]
    try:
        chosen = write_across(args.out, records, "python scripts/select_across.py " + shlex.join(argv), args.selections)
    except ValueError as error:
        parser.error(str(error))
    print(f"selection: chosen {chosen['setting']} at step {chosen['step']} (mean validation gain {100 * chosen['average']:+.2f}); "
          f"see {args.out / (records[0]['method'] + '.md')}")  # fmt: skip
    return chosen


if __name__ == "__main__":
    main()
