"""Class paths written before the package was renamed (`src.…`) keep loading, read as `dawe_merge.…`.

Configs, run folders' saved configs and DAWE export folders name classes by their import path; up to version
0.1.0 the package was called `src`. One import finder (standing aside where a project's own `src` package exists)
answers `src` and `src.<module>` with the `dawe_merge` module itself, not a copy: jsonargparse's subclass checks and
`isinstance` hold for either name. It is installed when `dawe_merge` is imported, so a plain `import src` elsewhere
still fails as it should.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import warnings

OLD, NEW = "src", "dawe_merge"


class OldClassPathWarning(UserWarning):
    """A config or folder names a class by the package's old name."""


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        pass


class _OldPackageFinder(importlib.abc.MetaPathFinder):
    """First on sys.meta_path, so that `src.methods` is the alias of `dawe_merge.methods` and not a second copy loaded
    from the aliased parent's folder; it stands aside where a real `src` package can be imported."""

    warned = False

    def find_spec(self, name: str, path=None, target=None):
        if name == OLD:
            if importlib.machinery.PathFinder.find_spec(OLD) is not None:
                return None  # a project's own `src` wins
        elif not name.startswith(OLD + ".") or sys.modules.get(OLD) is not sys.modules.get(NEW):
            return None
        new = NEW + name[len(OLD):]
        if importlib.util.find_spec(new) is None:
            return None
        if not _OldPackageFinder.warned:
            _OldPackageFinder.warned = True
            warnings.warn(f"'{name}' is this package's name before 0.2 ('{OLD}.…'); read as '{new}'. "
                          f"Replace '{OLD}.' by '{NEW}.' in the config or folder that names it.", OldClassPathWarning, stacklevel=2)  # fmt: skip
        return importlib.util.spec_from_loader(name, _AliasLoader(new), is_package=True)


def install() -> None:
    if not any(isinstance(finder, _OldPackageFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OldPackageFinder())

def current_class_paths(config_yaml: str) -> str:
    """A dumped config's `class_path: src.…` values under the current name, so what a run writes names the package
    as it is now (jsonargparse dumps class paths as they were given)."""
    return re.sub(rf"(\bclass_path:\s+['\"]?){OLD}\.", rf"\g<1>{NEW}.", config_yaml)
