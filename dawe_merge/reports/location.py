"""Where reports go when no `--results_dir` is given: `results/` in the working folder, or $DAWE_MERGE_RESULTS_DIR.

The Makefile sets the variable to runs/results, so its benchmark runs write beside their checkpoints and never into
the committed tables under results/ (`make main RESULTS=results` updates those on purpose).
"""
from __future__ import annotations

import os

RESULTS_DIR_VARIABLE = "DAWE_MERGE_RESULTS_DIR"


def default_results_dir() -> str:
    return os.environ.get(RESULTS_DIR_VARIABLE) or "results"
