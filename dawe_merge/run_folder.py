"""One run per folder: never two at once, and never a silent second `fit` beside an earlier one's checkpoints.

Two fits into one folder interleave their checkpoints (`last.ckpt` from one, `last-v1.ckpt` from the other) and a
later `test --ckpt_path …/last.ckpt` evaluates one run under the other's config; two `test`s into one results
folder leave whichever report came last. So a run takes a lock file in its run folder (`fit`) and its results folder
(every subcommand) for as long as it runs (the DDP ranks it launches share it: only rank 0 takes it), and a `fit`
without `--ckpt_path` into a folder that already holds checkpoints is refused: resume them, or choose another folder.
A lock whose process is gone (killed, crashed) is taken over with a warning.
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import warnings
from pathlib import Path

from dawe_merge.errors import ConfigError

LOCK = ".run.lock"
_HELD: set[Path] = set()  # the locks this process took


def check_no_earlier_checkpoints(checkpoints: Path, run: Path) -> None:
    """Refuse a fresh `fit` whose checkpoint folder holds an earlier run's checkpoints (Lightning would add `-v1` files)."""
    earlier = sorted(p.name for p in checkpoints.glob("*.ckpt")) if checkpoints.is_dir() else []
    if earlier:
        shown = ", ".join(earlier[:3]) + (f" and {len(earlier) - 3} more" if len(earlier) > 3 else "")
        raise ConfigError(
            f"Run folder '{run}' holds an earlier fit's checkpoints ({shown}): resume it with --ckpt_path "
            f"{checkpoints / ('last.ckpt' if 'last.ckpt' in earlier else earlier[-1])}, or give another "
            "--trainer.default_root_dir (or move those checkpoints away to start afresh there)."
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def take_run_lock(run: Path, what: str = "Run folder", option: str = "--trainer.default_root_dir") -> Path:
    """Create `run/.run.lock` for this process, or refuse naming the live process holding it; returns the lock's path."""
    run.mkdir(parents=True, exist_ok=True)
    lock = run / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            pid, host = holder.get("pid"), holder.get("host")
            if holder == me:  # this process's own (a fit, then its run folder's results): still its lock
                _HELD.add(lock)
                return lock
            if isinstance(pid, int) and (host != me["host"] or _alive(pid)):
                where = "" if host == me["host"] else f" on {host}"
                raise ConfigError(
                    f"{what} '{run}' is in use by another run (process {pid}{where}, lock {lock}): wait for it, or give "
                    f"this run another {option}."
                ) from None
            warnings.warn(f"{what} '{run}': taking over the lock of process {pid}, which is gone.", stacklevel=2)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        if not _HELD:
            atexit.register(release_held_locks)
        _HELD.add(lock)
        return lock
    raise ConfigError(f"{what} '{run}': could not take its lock {lock}; another run may be starting there.")


def release_run_lock(run: Path) -> None:
    """Give the lock back when the run is over (a process that dies gives it back by being gone)."""
    _release(run / LOCK)


def release_held_locks() -> None:
    """Every lock this process still holds: after a failed run, and when the process exits."""
    for lock in list(_HELD):
        _release(lock)


def _release(lock: Path) -> None:
    _HELD.discard(lock)
    try:
        if json.loads(lock.read_text()).get("pid") == os.getpid():
            lock.unlink()
    except (OSError, ValueError):
        pass
