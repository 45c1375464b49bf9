"""A method is one module plus one config: this file adds one and every list of methods picks it up.

The method (`HalfwayMerge`, θ0 + ½ Σ τ_t written out here) and its config exist only in this test; the registry
(dawe_merge/methods/registry.py) finds it through DAWE_MERGE_METHOD_CONFIGS, the Makefile's lists (`python -m
dawe_merge.methods.registry`) name it, `--config methods/halfway.yaml` finds its config, the comparison table
places its row, and its export records what it learned.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dawe_merge.merging.state_dict import StateDict
from dawe_merge.methods.registry import method_names, methods
from dawe_merge.methods.static import StaticMerge
from dawe_merge.shipped_configs import EXTRA_METHODS_VARIABLE, shipped_config
from tests.conftest import ROOT, pool_overrides, quiet_trainer, run_cli


class HalfwayMerge(StaticMerge):
    """θ0 + ½ Σ_t τ_t, computed here entry by entry (not through the library's task arithmetic)."""

    method_name = "halfway"

    def merge_state(self, pretrained: StateDict, task_vectors: list[StateDict]) -> StateDict:
        return {n: p + 0.5 * sum(tv[n] for tv in task_vectors) for n, p in pretrained.items()}

    def learned(self) -> dict:
        return {"kind": "scaling factor", "values": 0.5}


CONFIG = """\
seed_everything: 0
model:
  class_path: tests.test_method_registry.HalfwayMerge
trainer:
  logger: false
"""


@pytest.fixture
def halfway(tmp_path, monkeypatch):
    folder = tmp_path / "my_methods"
    folder.mkdir()
    (folder / "halfway.yaml").write_text(CONFIG)
    monkeypatch.setenv(EXTRA_METHODS_VARIABLE, str(folder))
    return folder


def test_shipped_methods_in_table_order():
    names = method_names()
    assert names[:2] == ["individual", "pretrained"]  # what merges are measured against comes first
    assert set(method_names(adaptive=True)) == {"adamerging_task_wise", "adamerging_layer_wise", "dawe_task_wise", "dawe_layer_wise"}
    assert names.index("ties") < names.index("adamerging_layer_wise")  # static merges before adaptive ones
    assert "expert" not in names  # fine-tuning an expert is no merge


def test_a_method_added_by_one_module_and_one_config(halfway, tiny_pool, data_config, tmp_path):
    entry = next(e for e in methods() if e.name == "halfway")
    assert entry.role == "static" and not entry.adapts and entry.config == halfway / "halfway.yaml"
    names, adaptive = method_names(), method_names(adaptive=True)
    assert names.index("pretrained") < names.index("halfway") < names.index(adaptive[0])  # a static merge: between the two
    # what the Makefile reads: a process of its own, as `make main` starts it
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([sys.executable, "-m", "dawe_merge.methods.registry", "static"], env=env, capture_output=True, text=True, check=True)
    assert "halfway" in listed.stdout.split()
    # the Makefile's `--config configs/methods/<name>.yaml` reaches the config outside the package
    assert shipped_config("configs/methods/halfway.yaml") == halfway / "halfway.yaml"

    common = ["--config", str(data_config), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path)]
    cli = run_cli(["test", *common, "--config", str(halfway / "halfway.yaml"), "--export_dir", str(tmp_path / "export")])
    run_cli(["test", *common, "--config", str(ROOT / "configs/methods/task_arithmetic.yaml"), "--model.init_args.scaling_factor", "0.5"])
    results = tmp_path / "results/tiny"
    mine, reference = (json.loads((results / m / "report.json").read_text()) for m in ("halfway", "task_arithmetic"))
    assert cli.model.test_report is not None and mine["method"] == "halfway"
    for task, values in reference.items():
        if isinstance(values, dict) and "accuracy" in values:
            assert mine[task]["accuracy"] == values["accuracy"] and mine[task]["loss"] == pytest.approx(values["loss"], abs=1e-5)
    rows = [line.split("|")[1].strip() for line in (results / "README.md").read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == ["halfway", "task_arithmetic"]  # header first, then the registry's order
    assert json.loads((tmp_path / "export/merge_info.json").read_text())["coefficients"] == {"kind": "scaling factor", "values": 0.5}
