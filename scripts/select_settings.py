"""Choose a method's settings on a benchmark without reading a test label.

Each candidate of an adaptive method's grid adapts once (`fit`, in this process) with monitoring on the validation
splits, which the TaskPool holds out from each task's *training* data; the choice is the best (setting, step) by
average validation accuracy, step 0 (task arithmetic) included (dawe_merge/reports/selection.py has the rule).
Adaptation itself reads unlabelled test inputs, as test-time adaptation does; the labels it is scored by are
validation labels. A static method's candidate is merged once and scored by `validate` on the same splits (a curve
of one point, step 0: the merge itself).

    python scripts/select_settings.py --config configs/benchmarks/text_minilm.yaml --method dawe_task_wise \
        --grid '{"lr": [1.0e-5, 1.0e-4, 1.0e-3], "hidden_layers": [0, 1], "standardize_features": [true, false]}'
    python scripts/select_settings.py --config configs/benchmarks/text_minilm.yaml --method dare --grid '{"p": [0.3, 0.5, 0.7, 0.9]}'

Grid keys without a dot are the method's options (model.init_args.<key>); others are given as they are
(e.g. "trainer.max_steps"). Writes <out>/<method>.json and .md (default out: results/<benchmark>/selection);
each candidate's checkpoints and curve go under runs/<benchmark>/selection/<method>/<index>/.
Options after `--` go to every `fit` (e.g. -- --seed_everything 1).
"""
from __future__ import annotations

import argparse
import itertools
import json
import shlex
import shutil
import sys
from pathlib import Path

from dawe_merge.cli import cli_main
from dawe_merge.methods.registry import methods
from dawe_merge.reports.selection import write_selection

ROOT = Path(__file__).resolve().parents[1]


def candidates_of(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in grid order (the first key varies slowest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def option(key: str) -> str:
    return f"--{key}" if "." in key else f"--model.init_args.{key}"


def command_line(setting: dict) -> list[str]:
    """The setting as options: strings as they are (a quoted choice would not match its Literal), others as JSON."""
    return [a for k, v in setting.items() for a in (option(k), v if isinstance(v, str) else json.dumps(v))]


def fit_args(config: list[str], method: str, setting: dict, run: Path, extra: list[str]) -> list[str]:
    """One candidate's `fit` command line: monitored on the validation splits, its own fresh run folder."""
    return ["fit", *config, "--config", str(ROOT / f"configs/methods/{method}.yaml"), *extra, *command_line(setting),
            "--data.init_args.monitor_split", "val", "--model.init_args.selection", "last",
            "--trainer.default_root_dir", str(run), "--results_dir", str(run / "results")]  # fmt: skip


def adapt(config: list[str], method: str, setting: dict, run: Path, extra: list[str]) -> list[dict]:
    """One candidate's `fit`; returns its curve (one row per monitored step)."""
    shutil.rmtree(run, ignore_errors=True)  # a fresh start: never resume or version an earlier run's checkpoints
    cli = cli_main(fit_args(config, method, setting, run, extra))
    return [dict(row) for row in cli.model.history]


def validate_args(config: list[str], method: str, setting: dict, run: Path, extra: list[str]) -> list[str]:
    """A static candidate's `validate` command line: merged once, scored on the whole validation splits."""
    return ["validate", *config, "--config", str(ROOT / f"configs/methods/{method}.yaml"), *extra, *command_line(setting),
            "--trainer.default_root_dir", str(run), "--results_dir", str(run / "results")]  # fmt: skip


def is_adaptive(method: str) -> bool:
    return next((m.adapts for m in methods() if m.name == method), True)


def candidate_args(config: list[str], method: str, setting: dict, run: Path, extra: list[str]) -> list[str]:
    """The command line one candidate runs: `fit` for an adaptive method, `validate` for a static one."""
    return (fit_args if is_adaptive(method) else validate_args)(config, method, setting, run, extra)


def score(config: list[str], method: str, setting: dict, run: Path, extra: list[str]) -> list[dict]:
    """A static candidate: merged once, its validation average as a curve of one point (step 0)."""
    shutil.rmtree(run, ignore_errors=True)
    cli = cli_main(validate_args(config, method, setting, run, extra))
    report = cli.model.validation_report
    return [{"step": 0, "average": report["average"]["accuracy"]}]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str], list[str]]:
    """(the script's options, the stacked `--config` options, the options after `--` for every `fit`)."""
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="benchmark config(s), stacked as main.py does")
    parser.add_argument("--method", required=True, help="a method config of configs/methods/ (adaptive or static)")
    parser.add_argument("--grid", required=True, help="JSON: option → list of values")
    parser.add_argument("--out", default=None, help="folder for <method>.json and .md (default: results/<benchmark>/selection)")
    parser.add_argument("--runs", default=None, help="folder for the candidates' runs (default: runs/<benchmark>/selection/<method>)")
    args = parser.parse_args(own)
    return args, [a for c in args.config for a in ("--config", c)], extra


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, config, extra = parse(argv)
    datamodule = cli_main([*config, "--config", str(ROOT / f"configs/methods/{args.method}.yaml"), *extra], run=False).datamodule
    held_out = datamodule.held_out_tasks()
    if held_out:
        sys.exit(f"error: {', '.join(held_out)} are held out from every selection (their family's held_out_tasks): "
                 "they check the defaults on tasks nobody chose anything on. Choose settings on another benchmark.")  # fmt: skip
    benchmark = datamodule.benchmark
    runs = Path(args.runs or f"runs/{benchmark}/selection/{args.method}")
    adaptive = is_adaptive(args.method)
    candidates = []
    for index, setting in enumerate(candidates_of(json.loads(args.grid))):
        print(f"selection: candidate {index}: {setting}", file=sys.stderr)
        curve = (adapt if adaptive else score)(config, args.method, setting, runs / str(index), extra)
        candidates.append({"setting": setting, "curve": curve})
    # a static method's gain is measured from task arithmetic on the same validation splits
    reference = None if adaptive else score(config, "task_arithmetic", {}, runs / "task_arithmetic", extra)[0]["average"]
    out = Path(args.out or f"results/{benchmark}/selection")
    chosen = write_selection(out, args.method, benchmark, candidates, "python scripts/select_settings.py " + shlex.join(argv), reference)
    print(f"selection: chosen {chosen['setting']} at step {chosen['step']} (validation average {100 * chosen['average']:.2f}); see {out / (args.method + '.md')}")
    return chosen


if __name__ == "__main__":
    main()
