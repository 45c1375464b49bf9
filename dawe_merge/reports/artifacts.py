"""Files an adaptive method leaves behind: curves, coefficient summaries, the exported trainable part."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch

from dawe_merge.reports.atomic import atomic_path, write_text_atomic
from dawe_merge.reports.plots import plot_adaptation, plot_coefficient_heatmap, plot_layer_coefficients


def write_adaptation(model, results: Path, run_dir: Path) -> None:
    """adaptation.csv/.png under results/, and `<run_dir>/trainable.pt` (state dict + metadata)."""
    results.mkdir(parents=True, exist_ok=True)
    history = model.history
    if history:
        columns = ["step", *model.task_names, "average"]
        rows = io.StringIO()
        writer = csv.DictWriter(rows, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: int(row[k]) if k == "step" else row[k] for k in columns} for row in history)  # steps are counts
        write_text_atomic(results / "adaptation.csv", rows.getvalue())
        split = getattr(getattr(model.trainer, "datamodule", None), "monitor_split", "val")
        best = model.best_validation if model.selection == "best_validation" else None
        plot_adaptation(history, model.task_names, results / "adaptation.png", f"{model.report_name}: accuracy during adaptation", split,
                        None if best is None else best["step"])  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    trainable = {n: t.cpu() for n, t in model.saved_state().items()}
    with atomic_path(run_dir / "trainable.pt") as tmp:
        torch.save({"state_dict": trainable, "metadata": model.checkpoint_metadata()}, tmp)


def write_coefficients(model, results: Path) -> None:
    """coefficients.json plus a heatmap (input task × expert) and, layer-wise, a per-tensor plot."""
    summary_fn = getattr(model, "coefficient_summary", None)
    summary = summary_fn() if summary_fn is not None else None
    if summary is None:
        return
    write_text_atomic(results / "coefficients.json", json.dumps(summary, indent=1, allow_nan=False) + "\n")
    tasks = summary["tasks"]
    plot_coefficient_heatmap(summary["by_input_task"], tasks, results / "coefficients_heatmap.png", f"{model.report_name}: mean coefficients")
    if summary.get("per_tensor") is not None:
        plot_layer_coefficients(summary["per_tensor"], tasks, results / "coefficients_per_tensor.png", f"{model.report_name}: coefficient per merged tensor",
                                summary.get("tensor_names"))  # fmt: skip
