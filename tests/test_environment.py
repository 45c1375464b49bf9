"""A report's environment names the CPU model: two hosts with the same vector instruction set can build different
models from the same command (the small T5 does), and only the model name tells them apart."""
from __future__ import annotations

import platform

import torch

from dawe_merge.reports import environment


def _fresh(monkeypatch, cpuinfo):
    monkeypatch.setattr(environment, "CPUINFO", cpuinfo)
    environment.cpu_model.cache_clear()


def test_the_cpu_device_names_the_model_from_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
    _fresh(monkeypatch, cpuinfo)
    try:
        capability = torch.backends.cpu.get_cpu_capability()
        assert environment.device_name(torch.device("cpu")) == f"cpu: AMD EPYC 7B13, {platform.machine()} {capability}"
    finally:
        environment.cpu_model.cache_clear()


def test_without_cpuinfo_the_device_falls_back_to_what_platform_knows(monkeypatch, tmp_path):
    _fresh(monkeypatch, tmp_path / "absent")
    monkeypatch.setattr(platform, "processor", lambda: "")
    try:
        capability = torch.backends.cpu.get_cpu_capability()
        assert environment.device_name(torch.device("cpu")) == f"cpu: {platform.machine()} {capability}"
    finally:
        environment.cpu_model.cache_clear()
