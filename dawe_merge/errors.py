"""Base of every error a user can fix from the config or command line.

`main.py` prints these as one readable message instead of a traceback; each subclass also keeps a
builtin base (ValueError, KeyError, ...) so library callers can catch them the usual way.
"""
import importlib


class UserFacingError(Exception):
    """Something wrong with the user's config, files or checkpoints; the message says how to fix it."""


class ConfigError(UserFacingError, ValueError):
    """A config value that cannot work (unknown task, duplicate names, missing folder setting, ...)."""


class MissingPackageError(UserFacingError, ImportError):
    """An optional package that a chosen model, corpus or feature extractor needs; the message says what to install."""


def require(module: str, install: str, purpose: str):
    """Import an optional dependency, or say which package to install for what."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingPackageError(f"{purpose} needs the Python package '{module}', which is not installed: pip install {install}") from err


def check_number(option: str, value: float, minimum: float, inclusive: bool = True) -> None:
    """A numeric option within its range (and finite), or a ConfigError naming the option."""
    import math

    ok = math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
    if not ok:
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(f"{option} must be {bound}, got {value}.")
