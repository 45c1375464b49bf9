"""Load a hypernetwork adapted elsewhere: this project's `trainable.pt` export or the original DAWE code's pickles.

The original code saved whole pickled `nn.Sequential(Linear, ReLU, Linear)` modules. They are read with
`weights_only=True` and an allow-list of exactly those three classes, so a file can never run arbitrary code.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dawe_merge.errors import UserFacingError
from dawe_merge.models.compatibility import check_metadata


class HypernetworkLoadError(UserFacingError, ValueError):
    """A hypernetwork file that is unreadable or does not fit this run."""


def read_hypernetwork(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state dict keyed like `Hypernetwork`, metadata or None for reference pickles)."""
    path = Path(path)
    if path.is_dir():
        raise HypernetworkLoadError(f"Hypernetwork file '{path}' is a folder: give the file inside it (a run's runs/.../trainable.pt).")
    if not path.is_file():
        raise HypernetworkLoadError(f"Hypernetwork file '{path}' does not exist.")
    try:
        with torch.serialization.safe_globals([nn.Sequential, nn.Linear, nn.ReLU]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not a safe hypernetwork file"
        raise HypernetworkLoadError(
            f"Cannot read '{path}' safely (only this project's trainable.pt exports and the original DAWE code's "
            f"pickled Sequential(Linear, ReLU, Linear) are accepted): {_why_unsafe(err)}"
        ) from None
    if isinstance(obj, nn.Sequential):  # the original code's format
        return {f"net.{k}": v for k, v in obj.state_dict().items()}, None
    if isinstance(obj, dict) and "state_dict" in obj:  # this project's export
        prefix = "hypernetwork."
        state = {k[len(prefix) :]: v for k, v in obj["state_dict"].items() if k.startswith(prefix)}
        if not state:
            raise HypernetworkLoadError(f"'{path}' holds no hypernetwork (method {obj.get('metadata', {}).get('method')}).")
        return state, obj.get("metadata")
    raise HypernetworkLoadError(f"'{path}' is neither a trainable.pt export nor a pickled nn.Sequential.")


def load_into(hypernetwork: nn.Module, path: str | Path, expected: dict) -> None:
    """Copy a saved hypernetwork into `hypernetwork` after checking it fits the current run.

    `expected` is the run's checkpoint metadata; the feature dimension and number of outputs are always
    checked, task names/order, mode and merged tensors whenever the file records them.
    """
    state, metadata = read_hypernetwork(path)
    weights = [v for k, v in state.items() if k.endswith("weight")]
    in_dim, out_dim = weights[0].shape[1], weights[-1].shape[0]
    if in_dim != expected["feature_dim"]:
        raise HypernetworkLoadError(
            f"'{path}' expects {in_dim}-d features, this run's feature extractor gives {expected['feature_dim']}-d; "
            "use the feature extractor the hypernetwork was adapted with."
        )
    if out_dim != expected["num_coefficients"] and metadata is None and expected["mode"] == "layer_wise":
        per_task = out_dim // max(1, len(expected["tasks"]))
        raise HypernetworkLoadError(
            f"'{path}' is a layer-wise hypernetwork of the original DAWE code: {per_task} coefficients per task, one per key of "
            "the OpenCLIP ImageEncoder's state dict (158 for ViT-B/32: fused q/k/v in_proj tensors, the projection and six "
            f"text-side keys). This run merges {expected['num_coefficients'] // max(1, len(expected['tasks']))} tensors of the "
            "transformers CLIP vision tower (q, k, v separate), and the original key order is not recorded in the file, so "
            "there is no exact correspondence. Use the task-wise file, or adapt layer-wise with this project."
        )
    if out_dim != expected["num_coefficients"]:
        raise HypernetworkLoadError(
            f"'{path}' outputs {out_dim} coefficients, this run needs {expected['num_coefficients']} "
            f"({expected['mode']}, {len(expected['tasks'])} tasks). Layer-wise hypernetworks only transfer between "
            "models with the same merged tensors; task-wise ones need the same number of tasks."
        )
    if metadata is not None:
        relaxed = {k: v for k, v in expected.items() if k in ("method", "mode", "tasks", "merged_tensors", "feature_dim")}
        check_metadata(metadata, relaxed)
    standardizer = {k for k in state if not k.startswith("net.")}
    if standardizer and not hypernetwork.standardize:
        raise HypernetworkLoadError(
            f"'{path}' was adapted on standardised features: set model.init_args.standardize_features: true to use it."
        )
    if hypernetwork.standardize and not standardizer:
        # statistics fitted here would feed standardised features to a network adapted on raw ones
        raise HypernetworkLoadError(
            f"'{path}' was adapted on raw features (it holds no standardisation statistics): set "
            "model.init_args.standardize_features: false to use it."
        )
    try:
        hypernetwork.net.load_state_dict({k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")})
    except RuntimeError as err:
        raise HypernetworkLoadError(f"'{path}' has another hidden depth than hidden_layers={hypernetwork.hidden_layers}: {err}") from err
    for name in standardizer:
        getattr(hypernetwork, name).copy_(state[name])


def _why_unsafe(err: Exception) -> str:
    """What the safe unpickler refused, without torch's advice to load with weights_only=False (which would run
    whatever a malicious file holds)."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(". ")[0]
        return f"it holds objects other than tensors ({reason[:160]})"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return "it holds objects other than tensors" if "weights_only" in text or "Weights only" in first else first[:200]
