"""Pushing an export to the Hugging Face hub: after the folder is written, so a failed push loses nothing."""
from __future__ import annotations

from pathlib import Path

from dawe_merge.errors import UserFacingError


class PushError(UserFacingError, RuntimeError):
    """The export is on disk but did not reach the hub (offline, unreachable, no token, no rights)."""


def push_export(folder: Path, repo_id: str) -> str:
    """Create `repo_id` if needed and upload `folder` to it; returns the commit's URL."""
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=f"Upload the merge exported to {folder.name}")
    except Exception as err:  # noqa: BLE001 - offline mode, connection, HTTP and auth errors all mean "not pushed"
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise PushError(
            f"The export is written to '{folder}', but pushing it to the hub as '{repo_id}' failed ({type(err).__name__}: {reason}). "
            f"The folder is kept: push it later with `hf upload {repo_id} {folder}`."
        ) from None
    return str(getattr(commit, "commit_url", commit))
