"""Result files appear whole or not at all: written to a temporary name, then renamed over the target.

Temporary names are unique per write, so two runs writing the same benchmark's files at once never
rename or delete each other's half-written files; `locked` serialises read-modify-write sequences
(reading every method's report and rewriting the comparison table) across processes.
"""
from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers infer the format); renamed onto it on success."""
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # a full disk fails here, before the rename, not silently later


def write_json_atomic(path: Path, data) -> None:
    """Strict JSON: NaN and infinity are refused (ValueError) rather than written as invalid JSON."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder` (a `.lock` file in it), held across processes for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
