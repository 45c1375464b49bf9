"""How an exported folder names the objects that rebuild its model: class path plus the arguments it was made with.

A DAWE folder must rebuild the family's pool (tokenizer, image processor, heads) and the feature
extractor in another process, without the config that made them. Recording the constructor call
keeps that generic: no family writes its own serialiser, and a family added later exports unchanged.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path

import torch

from dawe_merge.errors import ConfigError


class RecordsInit:
    """Mixin: remembers the arguments of the constructor call, so `init_spec()` can rebuild the object."""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        object.__setattr__(obj, "_init_call", (args, kwargs))  # before nn.Module.__init__ runs
        return obj

    def init_spec(self, drop: tuple[str, ...] = ()) -> dict:
        """{"class_path", "init_args"}: the constructor's arguments by name; relative paths that exist made absolute."""
        args, kwargs = getattr(self, "_init_call", ((), {}))
        bound = inspect.signature(type(self).__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        params = inspect.signature(type(self).__init__).parameters
        arguments = {}
        for name, value in list(bound.arguments.items())[1:]:
            if params[name].kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            else:
                arguments[name] = value
        arguments = {k: _absolute(v) for k, v in arguments.items() if k not in drop}
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": arguments}


def _absolute(value):
    """A relative path that exists here would break when the folder is loaded from elsewhere."""
    if isinstance(value, str) and value and not Path(value).is_absolute() and Path(value).exists():
        return str(Path(value).resolve())
    return value


def instantiate(spec: dict):
    """The object an `init_spec()` describes; a class that no longer exists is named in the error."""
    module_name, _, class_name = spec["class_path"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"Class '{spec['class_path']}' named by the export cannot be imported ({err}); install the project version that wrote it.") from err
    return cls(**spec["init_args"])


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in name order: the same weights give the same digest in any file format."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def file_digests(folder: str | Path) -> dict[str, str]:
    """sha256 of every weight file in a model folder (what a model card names experts by)."""
    out = {}
    for path in sorted(Path(folder).iterdir()):
        if path.suffix in (".safetensors", ".bin", ".pt") and path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(2**24), b""):
                    digest.update(chunk)
            out[path.name] = digest.hexdigest()
    return out
