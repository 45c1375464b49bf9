"""Merged models out of the process: `from_pretrained` folders, DAWE folders and their loader.

Imported lazily: the pools and methods import `dawe_merge.export.spec`, and this package's loader imports them.
"""


def __getattr__(name: str):
    if name == "load_dawe":
        from dawe_merge.export.dawe_folder import load_dawe

        return load_dawe
    if name == "DAWEModel":
        from dawe_merge.export.dawe_model import DAWEModel

        return DAWEModel
    raise AttributeError(name)


__all__ = ["DAWEModel", "load_dawe"]
