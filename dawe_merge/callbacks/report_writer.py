"""A `test`'s report on disk: results/<benchmark>/<method>/report.{json,csv,md}, the comparison table, the coefficients.

The CLI adds this callback to `test`, and `TaskPool.evaluate(model, results_dir=...)` to its own run, so both write the
same files by one path. Rank 0 writes; if the report cannot be written, it is printed and the error says so, so the
evaluation is not lost.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import lightning as L

from dawe_merge.reports.artifacts import write_coefficients
from dawe_merge.reports.environment import run_environment
from dawe_merge.reports.writer import write_report
from dawe_merge.run_checks import ResultsNotWritableError


class ReportWriter(L.Callback):
    """Args: results_dir: the results root; command and seed: what the report records as the run's command and seed."""

    def __init__(self, results_dir: str | Path, command: str | None = None, seed: int | None = None) -> None:
        self.results_dir, self.command, self.seed = Path(results_dir), command, seed
        self.written: Path | None = None  # the method's folder, once written
        self._started = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._started, self.written = time.perf_counter(), None  # before the method builds: merges count in the time

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        report = getattr(pl_module, "test_report", None)
        if report is None or not trainer.is_global_zero:
            return
        benchmark, method = trainer.datamodule.benchmark, pl_module.report_name
        try:
            self.written = write_report(report, results_dir=self.results_dir, benchmark=benchmark, method=method, command=self.command or "",
                                        seed=self.seed, seconds=time.perf_counter() - self._started,
                                        selection=getattr(pl_module, "selection_record", lambda: None)(),
                                        computed_from=getattr(pl_module, "computed_from", lambda: None)(),
                                        environment=run_environment(pl_module.device, trainer.precision))  # fmt: skip
        except OSError as err:
            print(json.dumps(report, indent=1), file=sys.stdout)
            raise ResultsNotWritableError(
                f"The evaluation finished, but its report could not be written to '{self.results_dir / benchmark / method}' "
                f"({err.strerror or err}); the report is printed above. Free space or choose another --results_dir, and run `test` again."
            ) from err
        try:
            write_coefficients(pl_module, self.written)
        except OSError as err:
            print(f"warning: coefficients could not be written ({err.strerror or err}); the report was written. Free space and rerun to add it.",
                  file=sys.stderr)  # fmt: skip
