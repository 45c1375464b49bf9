"""Peak memory of a block of code: exact allocator figures on CUDA, sampled process RSS on CPU.

See dawe_throughput.py's docstring for what the CPU figure can and cannot see.
"""
from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def release_freed_memory() -> None:
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


class _RssSampler(threading.Thread):
    """Reads the resident set size from /proc/self/statm about every `interval` seconds, keeps the maximum."""

    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        self.interval = interval
        self.stop = threading.Event()
        self.peak = self.read()

    def read(self) -> int:
        return int(os.pread(self.fd, 256, 0).split()[1]) * _PAGE

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(self.interval)

    def finish(self) -> int:
        self.stop.set()
        self.join()
        self.peak = max(self.peak, self.read())
        os.close(self.fd)
        return self.peak


@dataclass
class PeakMemory:
    """Peak memory above the level at entry, in bytes (None where it cannot be measured)."""

    device: torch.device
    extra: int | None = None

    @contextmanager
    def measure(self) -> Iterator[PeakMemory]:
        release_freed_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            yield self
            torch.cuda.synchronize(self.device)
            self.extra = torch.cuda.max_memory_allocated(self.device) - base
            return
        if not os.path.exists("/proc/self/statm"):
            yield self
            return
        sampler = _RssSampler()
        base = sampler.peak
        sampler.start()
        try:
            yield self
        finally:
            self.extra = max(0, sampler.finish() - base)
