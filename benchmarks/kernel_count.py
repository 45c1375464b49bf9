"""How many kernels one call launches, counted with the torch profiler.

At small batches the per-sample path pays for launches more than for arithmetic (a GPU kernel launch costs
microseconds whatever its size), so the count per forward shows a change to the launch overhead on a machine
without a GPU too. On CUDA the count is the CUDA kernels the profiler saw. On CPU it is the ATen operators that
do work: the outermost operators that do more than make a view, allocate or dispatch to others (NO_WORK); what
they call inside is part of them (`mm` once, whatever it calls), what a NO_WORK operator calls is counted
(`to` that converts counts its copy).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

# operators that compute nothing themselves: views, metadata, allocation, and dispatch to other operators
NO_WORK = {
    "aten::to", "aten::_to_copy", "aten::contiguous", "aten::clone", "aten::reshape", "aten::flatten", "aten::dropout",
    "aten::new_empty", "aten::new_empty_strided", "aten::zeros", "aten::ones", "aten::new_ones", "aten::new_zeros",
    "aten::view", "aten::_unsafe_view", "aten::as_strided", "aten::expand", "aten::transpose", "aten::t", "aten::permute",
    "aten::unsqueeze", "aten::squeeze", "aten::slice", "aten::select", "aten::alias", "aten::detach", "aten::detach_",
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::resolve_conj", "aten::resolve_neg", "aten::lift_fresh",
    "aten::unflatten", "aten::split", "aten::chunk", "aten::narrow", "aten::_reshape_alias", "aten::unbind",
}  # fmt: skip


def kernel_count(fn: Callable[[], object], device: torch.device) -> int:
    """Kernels launched by one call of `fn` (see the module docstring for what counts on each device)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.events()
    if device.type == "cuda":
        return sum(1 for e in events if e.device_type == DeviceType.CUDA)
    return sum(_work(e) for e in events if e.cpu_parent is None)


def _work(event) -> int:
    """Operators doing work in this event's subtree: itself if it does, else the outermost ones below it."""
    if event.name.startswith("aten::") and event.name not in NO_WORK:
        return 1
    return sum(_work(child) for child in event.cpu_children)
