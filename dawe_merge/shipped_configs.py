"""Configs that ship with the package, found by name from any folder.

`--config benchmarks/text_minilm.yaml` (or `configs/benchmarks/text_minilm.yaml`, as a checkout names it)
works wherever the CLI runs: a path that is not a file here is looked up in the installed package's
`configs/`. Paths inside a config (experts, runs, results) stay relative to the working folder, so a run
writes where it is started, never into the installed package.
"""
from __future__ import annotations

import os
from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"
CONFIG_FLAGS = ("--config", "-c", "--trainer", "--model", "--data")  # the flags that take a YAML file
# folders of method configs from outside the package (separated like PATH): their methods join the registry
# (dawe_merge/methods/registry.py) and `--config methods/<name>.yaml` finds them as it finds the shipped ones
EXTRA_METHODS_VARIABLE = "DAWE_MERGE_METHOD_CONFIGS"


def extra_method_folders() -> list[Path]:
    return [Path(p) for p in os.environ.get(EXTRA_METHODS_VARIABLE, "").split(os.pathsep) if p]


def shipped_config(value: str) -> Path | None:
    """The package's config that `value` names, when `value` is a relative YAML path that is no file here."""
    path = Path(value)
    if path.is_absolute() or path.is_file() or path.suffix not in (".yaml", ".yml"):
        return None
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    if not parts:
        return None
    candidates = [CONFIGS.joinpath(*parts)]
    if parts[0] == "methods" and len(parts) > 1:
        candidates += [folder.joinpath(*parts[1:]) for folder in extra_method_folders()]
    return next((c for c in candidates if c.is_file()), None)


def with_shipped_configs(argv: list[str]) -> list[str]:
    """`argv` with every config-file value that names a shipped config replaced by its installed path."""
    out = list(argv)
    for i, arg in enumerate(out):
        flag, sep, inline = arg.partition("=")
        if flag not in CONFIG_FLAGS:
            continue
        if sep:
            found = shipped_config(inline)
            if found is not None:
                out[i] = f"{flag}={found}"
        elif i + 1 < len(out):
            found = shipped_config(out[i + 1])
            if found is not None:
                out[i + 1] = str(found)
    return out


def shipped_names() -> list[str]:
    """Every shipped config as `--config` accepts it (for error messages and --help)."""
    return sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))
