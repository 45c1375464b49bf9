"""Inputs for `predict` from the user's own files: a jsonl of texts/prompts or image paths, a text file, an image folder.

Each input gets the task whose head reads it (its own "task" key, else the one named by the option)
and its position in the file as `index`, which predictions.jsonl reports back.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dawe_merge.errors import ConfigError, UserFacingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class InputFileError(UserFacingError, ValueError):
    """A predict input file that is missing or unreadable, or a line without what the model reads."""


def read_user_inputs(path: str, column: str, tasks: list[str], default_task: str | None) -> dict[str, list[dict]]:
    """{task: rows}, each row {column: input, "index": position in the file, "source": the line's text or image path},
    tasks in the TaskPool's order."""
    source = Path(path)
    if not source.exists():
        raise InputFileError(f"Predict input '{path}' does not exist (working dir: {Path.cwd()}).")
    if source.is_dir():
        if column != "image":
            raise InputFileError(f"Predict input '{path}' is a folder; this model reads {column}s: give a .jsonl (one {{\"{column}\": ...}} per line) or a .txt file.")
        records = [{"image": str(p)} for p in sorted(source.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not records:
            raise InputFileError(f"Predict input folder '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    elif source.suffix == ".txt" and column == "text":
        records = [{"text": line} for line in _text(source).splitlines() if line.strip()]
    else:
        records = _jsonl(source, column)
    if not records:
        raise InputFileError(f"Predict input '{path}' holds no inputs.")
    grouped: dict[str, list[dict]] = {}
    for index, record in enumerate(records):
        task = record.get("task", default_task)
        if task is not None and not isinstance(task, str):
            raise InputFileError(f"Input {index + 1} of '{path}' has \"task\": {json.dumps(task)[:60]}; name a task (tasks: {', '.join(tasks)}).")
        if task is None:
            raise InputFileError(
                f"Input {index + 1} of '{path}' names no task: add \"task\" to each line or set data.init_args.predict_task "
                f"(tasks: {', '.join(tasks)})."
            )
        if task not in tasks:
            raise ConfigError(f"Input {index + 1} of '{path}' asks for task '{task}', which is not in the TaskPool (tasks: {', '.join(tasks)}).")
        for key in (column, "text_pair"):
            if key in record and (not isinstance(record[key], str) or not record[key].strip()):
                raise InputFileError(f"Input {index + 1} of '{path}' has \"{key}\": {json.dumps(record[key])[:60]}; give a non-empty string ({'an image path' if column == 'image' else 'the text'}).")
        value = _image(record[column], source, index) if column == "image" else record[column]
        row = {column: value, "index": index, "source": record[column]}  # source: the text or image path, for predictions.jsonl
        if column == "text" and "text_pair" in record:  # a sentence-pair task's second text
            row["text_pair"] = record["text_pair"]
        grouped.setdefault(task, []).append(row)
    for task, rows in grouped.items():
        if len({"text_pair" in row for row in rows}) > 1:
            raise InputFileError(f"Inputs of task '{task}' in '{path}' give \"text_pair\" on some lines only: give it on every line of a sentence-pair task.")
    return {t: grouped[t] for t in tasks if t in grouped}


def _text(source: Path) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"Predict input '{source}' is not UTF-8 text (byte {err.start} is {err.object[err.start:err.start + 1]!r}): "
            "give a .jsonl file (one JSON object per line), a .txt file, or for images a folder or a .jsonl of their paths."
        ) from None


def _jsonl(source: Path, column: str) -> list[dict]:
    records = []
    for number, line in enumerate(_text(source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise InputFileError(f"Line {number} of '{source}' is not JSON ({err.msg}); write one JSON object per line.") from err
        if not isinstance(record, dict) or column not in record:
            raise InputFileError(f"Line {number} of '{source}' has no \"{column}\" key: each line is {{\"{column}\": ..., \"task\": ... (optional)}}.")
        records.append(record)
    return records


def _image(value: str, source: Path, index: int) -> Image.Image:
    path = Path(value) if Path(value).is_absolute() or source.is_dir() else source.parent / value
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise InputFileError(f"Input {index + 1} ('{path}') is not a readable image ({type(err).__name__}).") from err
