"""Pairs of library versions that install together but are known to fail, named before they fail deep inside.

pyproject.toml's ranges exclude what docs/versions.md saw fail; a user who forces an excluded version (or an
environment that predates the range) still gets one line naming both versions and the fix instead of a traceback.
"""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

from dawe_merge.errors import ConfigError

# (package, below this version) with (other package, from this version): what fails, and the fix
KNOWN_BAD = [
    (("peft", "0.21.2"), ("transformers", "5.24.0"),
     "cannot load a LoRA expert of an encoder-decoder (T5ForConditionalGeneration has no "
     "_prepare_encoder_decoder_kwargs_for_generation)", "pip install 'peft>=0.21.2'"),
]  # fmt: skip


def package_version(package: str) -> str | None:
    """`package`'s installed version as its metadata says it, None when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def installed_version(package: str) -> Version | None:
    found = package_version(package)
    return None if found is None else Version(found)


def recorded_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """Python's version and each package's, the record an export or a report keeps of what made it."""
    return {"python": platform.python_version(), **{package: package_version(package) for package in packages}}


def check_library_pairs(purpose: str, packages: tuple[str, ...]) -> None:
    """Refuse a known-bad pair among `packages` before `purpose` runs into it."""
    for (old, below), (new, since), what, fix in KNOWN_BAD:
        if old not in packages and new not in packages:
            continue
        have_old, have_new = installed_version(old), installed_version(new)
        if have_old is not None and have_new is not None and have_old < Version(below) and have_new >= Version(since):
            raise ConfigError(f"{old} {have_old} with {new} {have_new} {what}, so {purpose} would fail: {fix}.")
