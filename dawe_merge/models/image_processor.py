"""The image processor a vision checkpoint names, built so that a broken or missing torchvision is no dead end.

transformers picks a torchvision-backed processor where torchvision imports and (from 5.18) the PIL one where
it is absent. A torchvision that does not match the installed torch or transformers fails inside that choice
with an ImportError from deep in the stack; the PIL processor is then asked for explicitly, and where that
cannot be built either the user gets one line naming the versions and the fix.
"""
from __future__ import annotations

from importlib import metadata

from dawe_merge.errors import MissingPackageError, require


def load_image_processor(path: str):
    """`AutoImageProcessor.from_pretrained(path)`, retried with the PIL backend when the torchvision one cannot import."""
    require("PIL", "pillow", "image processors")
    failure: Exception | None = None
    for options in ({}, {"backend": "pil"}):
        try:
            from transformers import AutoImageProcessor

            return AutoImageProcessor.from_pretrained(path, **options)
        except ImportError as err:
            failure = err
    raise MissingPackageError(
        f"transformers {_version('transformers')} cannot build the image processor of '{path}' "
        f"(torchvision {_version('torchvision')}): {_first_line(failure)}. Remove the torchvision that does not match "
        "(pip uninstall torchvision: transformers>=5.18 then uses its PIL processors, which need only pillow), "
        "or install the torchvision built for your torch."
    ) from failure


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _first_line(err: Exception | None) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else ''}"
