"""A Hugging Face hub cache in the real layout (blobs, snapshots linking to them, refs/main), filled with local folders.

huggingface_hub, transformers, peft and datasets read it exactly as they read a cache their own downloads
filled, online (answering from it when the network is absent) and offline.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_repo(cache: Path, repo_id: str, folder: Path, repo_type: str = "model") -> Path:
    """Put every file under `folder` into `cache` as the snapshot of `repo_id` that refs/main names."""
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def hub_environment(cache: Path, online: bool, root: Path) -> dict[str, str]:
    """The environment of a user's run against `cache`: offline (HF_HUB_OFFLINE=1) or online with the hub out of reach.

    Online, the endpoint is a closed local port, so no request can leave this machine however the network is set
    up: every lookup fails at once, as it does on a machine without a network, and the cache answers.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_HUB_CACHE=str(cache), HF_HOME=str(root / "hf_home"), HF_DATASETS_CACHE=str(root / f"datasets_{online}"))
    if online:
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    else:
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env
