"""Whether a saved trainable part (checkpoint, export, transferred hypernetwork) fits the current run."""
from __future__ import annotations

from dawe_merge.errors import UserFacingError


class IncompatibleCheckpointError(UserFacingError, ValueError):
    """A checkpoint made for another task set, mode or model."""


def check_metadata(saved: dict, current: dict) -> None:
    """Refuse a checkpoint whose method, mode, tasks or merged tensors differ, saying which and how to fix."""
    if saved.get("method") != current["method"]:
        raise IncompatibleCheckpointError(
            f"Checkpoint is from method '{saved.get('method')}', this run is '{current['method']}'. Use a matching config."
        )
    if saved.get("mode") != current["mode"]:
        raise IncompatibleCheckpointError(
            f"Checkpoint is {saved.get('mode')}, this run is {current['mode']}: set model.init_args.mode: {saved.get('mode')} "
            "or adapt a new checkpoint in this mode."
        )
    if list(saved.get("tasks", [])) != list(current["tasks"]):
        raise IncompatibleCheckpointError(
            f"Checkpoint tasks {saved.get('tasks')} differ from this TaskPool's {current['tasks']} "
            "(names and order must match; coefficients are per task position)."
        )
    if current.get("merged_tensors") is not None and saved.get("merged_tensors") != current["merged_tensors"]:
        raise IncompatibleCheckpointError(
            "Layer-wise checkpoint was adapted for other merged tensors (another primary model architecture): "
            f"{len(saved.get('merged_tensors') or [])} saved vs {len(current['merged_tensors'])} here."
        )
    if "standardize_features" in current and bool(saved.get("standardize_features")) != current["standardize_features"]:
        raise IncompatibleCheckpointError(
            f"Checkpoint was adapted with standardize_features={bool(saved.get('standardize_features'))}, this run has "
            f"{current['standardize_features']}: set model.init_args.standardize_features to match."
        )
    for key in ("feature_extractor", "feature_dim"):
        if key in current and saved.get(key) != current[key]:
            raise IncompatibleCheckpointError(
                f"Checkpoint {key} is {saved.get(key)!r}, this run uses {current[key]!r}; use the same feature extractor."
            )
