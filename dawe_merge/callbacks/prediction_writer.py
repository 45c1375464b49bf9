"""`predict`'s file: results/<benchmark>/<method>/predictions.jsonl, one line per input (its task, index, class and
probabilities, an adaptive merge's coefficients), gathered from every process and, for a predict file, in its order."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from dawe_merge.reports.atomic import write_text_atomic
from dawe_merge.reports.predictions import gather_rows, in_input_order


def _rows(outputs):
    """The row dicts of predict's outputs, however Lightning nested them (per loader, per batch)."""
    if isinstance(outputs, dict):
        yield outputs
    elif isinstance(outputs, list):
        for item in outputs:
            yield from _rows(item)


class PredictionsJsonl(BasePredictionWriter):
    """Args: results_dir: the results root (the file goes to <results_dir>/<benchmark>/<method>/predictions.jsonl)."""

    def __init__(self, results_dir: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.results_dir = Path(results_dir)
        self.written: Path | None = None  # the file and its number of rows, once written
        self.count = 0

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions, batch_indices) -> None:
        rows = gather_rows(list(_rows(predictions)), trainer.world_size)
        if not trainer.is_global_zero:
            return
        taskpool = trainer.datamodule
        if getattr(taskpool, "predict_file", None) is not None:  # the file's order, with its inputs
            column = pl_module.modelpool.input_column
            rows = in_input_order(rows, taskpool.user_inputs(column), column)
        out = self.results_dir / taskpool.benchmark / pl_module.report_name / "predictions.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, "".join(json.dumps(row) + "\n" for row in rows))
        self.written, self.count = out, len(rows)
