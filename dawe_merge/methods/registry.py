"""The list of merging methods, read from their configs: a method exists by having a config.

Each `configs/methods/<name>.yaml` whose `model.class_path` is a merging method (its class's `role` is
`reference`, `static` or `adaptive`) is one method named `<name>`. The Makefile, the GPU check, the comparison
tables and the tests all take their lists from here, so adding a method is one module plus one config.
Folders named in `DAWE_MERGE_METHOD_CONFIGS` (separated like PATH) add methods from outside the package, and
`--config methods/<name>.yaml` finds their configs.

    python -m dawe_merge.methods.registry static     # the methods `test` evaluates as they are, in table order
    python -m dawe_merge.methods.registry adaptive   # the methods `fit` adapts before `test`
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from dawe_merge.errors import ConfigError
from dawe_merge.shipped_configs import CONFIGS, EXTRA_METHODS_VARIABLE, extra_method_folders

# table order: what merges are measured against, then the merges computed from the weights alone, then the adaptive
ROLES = ("reference", "static", "adaptive")


@dataclass(frozen=True)
class MethodEntry:
    name: str
    config: Path
    class_path: str
    role: str

    @property
    def adapts(self) -> bool:
        """Whether `fit` adapts the method before `test` evaluates it."""
        return self.role == "adaptive"


def config_folders() -> list[Path]:
    """The shipped method configs, then every folder named in DAWE_MERGE_METHOD_CONFIGS."""
    return [CONFIGS / "methods", *extra_method_folders()]


def _role(config: Path, class_path: str) -> str | None:
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{config}: model.class_path {class_path!r} cannot be imported ({err}); fix the config or install its package") from err
    return getattr(cls, "role", None)


@lru_cache(maxsize=8)
def _entries(folders: tuple[Path, ...]) -> tuple[MethodEntry, ...]:
    found: dict[str, MethodEntry] = {}
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"{EXTRA_METHODS_VARIABLE} names {folder}, which is not a folder of method configs")
        for config in sorted(folder.glob("*.yaml")):
            class_path = ((yaml.safe_load(config.read_text()) or {}).get("model") or {}).get("class_path")
            role = _role(config, class_path) if class_path else None
            if role not in ROLES:
                continue  # expert fine-tuning and other configs that are not a merge
            if config.stem in found:
                raise ConfigError(f"two method configs are named {config.stem!r}: {found[config.stem].config} and {config}; rename one")
            found[config.stem] = MethodEntry(config.stem, config, class_path, role)
    return tuple(sorted(found.values(), key=lambda e: (ROLES.index(e.role), e.name)))


def methods() -> list[MethodEntry]:
    """Every merging method, in table order: role (reference, static, adaptive), then name."""
    return list(_entries(tuple(config_folders())))


def method_names(adaptive: bool | None = None) -> list[str]:
    """Names in table order; adaptive=False: those `test` evaluates as they are, True: those `fit` adapts first."""
    return [e.name for e in methods() if adaptive is None or e.adapts == adaptive]


def table_rank(report_name: str) -> tuple[int, str]:
    """Sort key of a report folder's name: its method's place (the longest method name it starts with, as in
    `dawe_task_wise_best_validation_seed1`), then the name; names of no method come last."""
    names = method_names()
    base = max((n for n in names if report_name == n or report_name.startswith(n + "_")), key=len, default=None)
    return (names.index(base) if base is not None else len(names), report_name)


def main(argv: list[str]) -> int:
    groups = {"static": False, "adaptive": True, "all": None}
    if len(argv) != 1 or argv[0] not in groups:
        print(f"usage: python -m dawe_merge.methods.registry {{{'|'.join(groups)}}}", file=sys.stderr)
        return 2
    print(" ".join(method_names(groups[argv[0]])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
