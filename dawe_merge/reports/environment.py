"""What a number depends on besides its command and seed: the library versions, the device, the precision and the
torch thread count. The same command and seed can give other digits on another CPU model (even one with the same
vector instruction set), another GPU, or under another thread count (float sums in another order), and a small model
trained from scratch can carry such a difference into every row; a report that records them lets a reader tell that
from a change in the code.
"""
from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

import torch

from dawe_merge.library_versions import recorded_versions

LIBRARIES = ("torch", "transformers", "peft", "lightning")
CPUINFO = Path("/proc/cpuinfo")


@cache
def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), or what `platform` knows elsewhere; "" when neither says."""
    try:
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor()


def device_name(device: torch.device) -> str:
    """`cuda: <GPU name>`, or `cpu: <CPU model>, <machine> <the vector instruction set torch's kernels use>`."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        model = cpu_model()
        return f"cpu: {model + ', ' if model else ''}{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
    return device.type


def run_environment(device: torch.device, precision: str | None) -> dict:
    """The environment of a run whose module sits on `device`, under Lightning's `precision` (e.g. 32-true)."""
    return {
        **recorded_versions(LIBRARIES),
        "device": device_name(device),
        "precision": None if precision is None else str(precision),
        "torch_threads": torch.get_num_threads(),
    }
