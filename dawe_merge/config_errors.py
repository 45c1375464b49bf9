"""jsonargparse's config errors in one line: the key, the bad value, and the closest valid one.

jsonargparse reports a mistake inside a `class_path` block as a nested account of every Union subtype it
tried (~10 lines here, ~60 with the usage text). The innermost error is what the user got wrong; this
module finds it, names the full key, and suggests the nearest valid name with difflib.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import re

CLASS_PATH = re.compile(r"Problem with given class_path '([\w.]+)'")
NO_ATTRIBUTE = re.compile(r"module '([\w.]+)' has no attribute '(\w+)'")
NOT_ACCEPTED = re.compile(r"Option '([\w.]+)' is not accepted")
LITERAL = re.compile(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)")
EXPECTED = re.compile(r"Expected a (?:<class '([\w.]+)'>|(.+?))\. Got value: (.*)")
PARSER_KEY = re.compile(r'Parser key "([\w.]+)"')
UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)")


def _closest(word: str, options) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def _init_options(class_path: str) -> list[str]:
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return []
    return _init_options_of(cls)


def _nested_value(message: str, keys: list[str]) -> str | None:
    """A wrong value deep inside a nested entry (a task of the TaskPool's list): its key path, entry and value."""
    if len(keys) < 2:
        return None
    last = message.rfind(f'Parser key "{keys[-1]}"')
    tail = message[last:]
    kinds = re.search(r"Subtypes: \[([^\]]*)\]", tail)
    given = re.search(r"Given value: (.*)", tail)
    if not kinds or not given:
        return None
    names = [("null" if k == "NoneType" else k) for k in re.findall(r"<class '(?:[\w.]+\.)?(\w+)'>", kinds.group(1))]
    value = given.group(1).strip()
    entry = re.search(r"\{'name': '([^']+)'[^{}]*'" + re.escape(keys[-1]) + "': '" + re.escape(value) + "'", message)
    path = ".init_args.".join(keys[:-1]) + (f" (entry '{entry.group(1)}')" if entry else "")
    return f"{path}: {keys[-1]}: '{value}' is not a valid {' or '.join(names)}"


def one_line(message: str) -> str:
    """The user's mistake in `message` (a jsonargparse ArgumentError's text) as one line with a suggestion."""
    keys = PARSER_KEY.findall(message)
    classes = CLASS_PATH.findall(message)
    where = ".init_args.".join(keys[:1] + keys[1:]) if keys else ""
    if (m := NO_ATTRIBUTE.search(message)) and classes:
        module = importlib.import_module(m.group(1))
        names = [n for n in dir(module) if not n.startswith("_") and inspect.isclass(getattr(module, n))]
        match = difflib.get_close_matches(m.group(2), names, n=1, cutoff=0.5)
        hint = f"; did you mean '{m.group(1)}.{match[0]}'?" if match else f" (classes in {m.group(1)}: {', '.join(names[:8])})"
        return f"{where + '.' if where else ''}class_path: '{classes[-1]}' does not exist{hint}"
    if (m := NOT_ACCEPTED.search(message)) and classes:
        option = m.group(1).split(".")[-1]
        return f"{where}.init_args.{m.group(1)}: {classes[-1]} has no option '{option}'{_closest(option, _init_options(classes[-1]))}"
    if m := LITERAL.search(message):
        choices = [c.strip().strip("'\"") for c in m.group(1).split(",")]
        value = m.group(2).strip()
        return f"{where}: '{value}' is not one of {', '.join(choices)}{_closest(value, choices)}"
    if nested := _nested_value(message, keys):
        return nested
    if m := EXPECTED.search(message):
        kind = m.group(1) or m.group(2)
        return f"{where}: '{m.group(3).strip()}' is not a valid {kind}"
    if m := UNRECOGNIZED.search(message):
        options = [a for a in m.group(1).split() if a.startswith("--")]
        if options and options[0].startswith(("--optimizer", "--lr_scheduler")):
            return (f"{options[0]}: the methods here build their own optimizer (Adam/AdamW with warm-up for experts); "
                    "set its learning rate with --model.init_args.lr")  # fmt: skip
        suggestion = ""
        if options and options[0].startswith("--trainer."):
            import lightning

            suggestion = _closest(options[0][len("--trainer.") :], _init_options_of(lightning.Trainer))
        shown = ", ".join(options) or m.group(1)
        return f"unknown option {shown}{suggestion} (see `python main.py <subcommand> --help`)"
    lines = [line.strip() for line in message.splitlines() if line.strip() and "NoneType" not in line and not line.strip().startswith("Given value")]
    return " ".join(lines[-2:]) if lines else message


def _init_options_of(cls) -> list[str]:
    """Constructor options of `cls`, following **kwargs up its bases (a family's TaskPool passes them on)."""
    options: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        options += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in options]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return options
