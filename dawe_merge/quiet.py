"""What a run prints: its own lines and one results table; the libraries' device lines, tips, seed notices and
weight-loading bars only with `--verbose` (they repeat on every invocation and bury the results)."""
from __future__ import annotations

import logging

LIBRARY_LOGGERS = ("lightning.pytorch", "lightning.fabric")  # Lightning's device lines, tips, "Seed set to"


def asked_verbose(args: list[str]) -> bool:
    """Whether the command line says `--verbose` (or `--verbose true`), read before the parser runs: the libraries
    speak while the CLI is built, before any hook sees the parsed config."""
    for i, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if flag != "--verbose":
            continue
        if not sep:
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else "true"
        return value.lower() in ("true", "1", "yes")
    return False


def quiet_libraries(verbose: bool) -> None:
    """Quiet (or, with `verbose`, restore) Lightning's info lines and transformers' and the hub's progress bars."""
    import huggingface_hub.utils
    import transformers

    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:
        transformers.utils.logging.enable_progress_bar()
        huggingface_hub.utils.enable_progress_bars()
    else:
        transformers.utils.logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()
