"""Result files appear whole or not at all: written to a temporary name, then renamed over the target."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers infer the format); renamed onto it on success."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, data) -> None:
    """Strict JSON: NaN and infinity are refused (ValueError) rather than written as invalid JSON."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
