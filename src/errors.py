"""Base of every error a user can fix from the config or command line.

`main.py` prints these as one readable message instead of a traceback; each subclass also keeps a
builtin base (ValueError, KeyError, ...) so library callers can catch them the usual way.
"""


class UserFacingError(Exception):
    """Something wrong with the user's config, files or checkpoints; the message says how to fix it."""


class ConfigError(UserFacingError, ValueError):
    """A config value that cannot work (unknown task, duplicate names, missing folder setting, ...)."""
