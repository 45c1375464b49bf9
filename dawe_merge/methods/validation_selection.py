"""`selection: best_validation` apart from the Lightning hooks: when it can run, what the report records, what it says.

The candidates are the states monitored on the validation splits (held out from the training data), the start (step 0,
task arithmetic with init_lambda) among them, and the earlier state wins a tie: the selected state is never below the
start on that data, and a record names the later steps it tied with, so a reader can count choices a tie decided.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dawe_merge.errors import ConfigError

if TYPE_CHECKING:
    import lightning as L


def check_selection_can_run(trainer: L.Trainer) -> None:
    """Validation labels only, monitoring on, and the start evaluated (Lightning's sanity check is step 0)."""
    if getattr(trainer.datamodule, "monitor_split", "val") != "val":
        raise ConfigError(
            "selection best_validation chooses by accuracy, which must not read test labels: set "
            "--data.init_args.monitor_split val (the held-out training data), or --model.init_args.selection last."
        )
    if not trainer.limit_val_batches or trainer.val_check_interval is None:
        raise ConfigError("selection best_validation needs monitoring: give trainer.limit_val_batches > 0 and a val_check_interval.")
    if trainer.num_sanity_val_steps == 0:
        raise ConfigError(
            "selection best_validation keeps the start (step 0) among the candidates, which Lightning evaluates in its "
            "sanity check: set --trainer.num_sanity_val_steps -1 (the method configs do)."
        )


def selection_record(best: dict, history: list[dict[str, float]]) -> dict:
    """The report's record of the chosen step; `tied_with_later_steps` when other monitored states scored the same."""
    step = int(best["step"])
    tied = sorted(int(r["step"]) for r in history if r["average"] == best["average"] and int(r["step"]) != step)
    return {"rule": "best_validation", "step": step, "validation_average": float(best["average"]),
            **({"tied_with_later_steps": tied} if tied else {})}  # fmt: skip


def selection_message(best: dict, history: list[dict[str, float]]) -> str:
    """One line for the console: the chosen step's validation average beside the start's."""
    start = next((r for r in history if r["step"] == 0), None)
    versus = "" if start is None else f"; the start (step 0): {100 * start['average']:.2f}"
    return f"selection: the state of step {best['step']} (validation average {100 * best['average']:.2f}{versus})"
