"""What an adaptation objective costs: time per step, the one-off work before the first step, and the memory it keeps.

    python benchmarks/objective_cost.py --config configs/benchmarks/text_minilm.yaml --method adamerging_task_wise --steps 20

Runs `fit` of the method with each objective side by side in one process (entropy first, then expert_kl; the same
seed, data and steps), on the benchmark's experts, and prints per objective: the median wall time of a training step,
the time from `fit`'s start to its first step (expert_kl computes every expert's predictions on the adaptation inputs
there), the size of expert_kl's cached targets, and the process's peak resident memory after each run (a running
maximum: the second figure includes the first run). Ratios are expert_kl ÷ entropy.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dawe_merge.cli import cli_main  # noqa: E402


class StepClock(L.Callback):
    def __init__(self) -> None:
        self.fit_start, self.first_step, self.steps = 0.0, None, []

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._started = time.perf_counter()
        if self.first_step is None:
            self.first_step = self._started

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(time.perf_counter() - self._started)


def measure(config: str, method: str, objective: str, steps: int, out: Path) -> dict:
    clock = StepClock()
    cli = cli_main(["--config", config, "--config", f"configs/methods/{method}.yaml", "--model.init_args.objective", objective,
                    "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
                    "--trainer.logger", "false", "--trainer.default_root_dir", str(out / objective), "--results_dir", str(out / "results")],
                   run=False)  # fmt: skip  (no subcommand: the trainer runs fit below)
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cached = sum(q.numel() * q.element_size() for targets in cli.model._expert_targets.values() for q in targets.values())
    return {"step_s": statistics.median(clock.steps[1:] or clock.steps), "before_first_step_s": clock.first_step - clock.fit_start,
            "cached_bytes": cached, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/benchmarks/text_minilm.yaml")
    parser.add_argument("--method", default="adamerging_task_wise")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # the CLI below reads only the arguments it is given
    with tempfile.TemporaryDirectory() as tmp:
        rows = {o: measure(args.config, args.method, o, args.steps, Path(tmp)) for o in ("entropy", "expert_kl")}
    e, k = rows["entropy"], rows["expert_kl"]
    print(f"{args.method} on {Path(args.config).stem}, {args.steps} steps")
    print("| objective | step (s) | before the first step (s) | cached targets (KiB) | peak RSS so far (MiB) |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['step_s']:.3f} | {r['before_first_step_s']:.1f} | {r['cached_bytes'] / 1024:.1f} | {r['peak_rss_mib']:.0f} |")
    print(f"expert_kl ÷ entropy: step {k['step_s'] / e['step_s']:.2f}×, before the first step {k['before_first_step_s'] / max(e['before_first_step_s'], 1e-9):.2f}×")


if __name__ == "__main__":
    main()
