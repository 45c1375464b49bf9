"""A method built in Python with its class defaults is the method its config runs: a README example, a notebook and
`main.py` give the same numbers. One class serves two configs (task- and layer-wise): `mode` and the settings listed
in PER_MODE are what a mode's config sets on top of the defaults."""
from __future__ import annotations

import importlib
import inspect

import pytest
import yaml

from tests.conftest import ROOT

CONFIGS = sorted(p for p in (ROOT / "configs/methods").glob("*.yaml") if p.stem != "expert")
# (config, key): set by that mode's config on purpose, documented in the config beside the value
PER_MODE = {("adamerging_layer_wise", "lr"), ("adamerging_layer_wise", "objective"), ("dawe_layer_wise", "objective"), ("dawe_layer_wise", "lr")}
BUILT_ELSEWHERE = {"modelpool", "feature_extractor"}  # the benchmark config gives them


def _class(class_path: str):
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_setting_of_a_method_config_is_its_class_default(config):
    import dawe_merge.methods  # noqa: F401

    model = yaml.safe_load(config.read_text())["model"]
    defaults = inspect.signature(_class(model["class_path"]).__init__).parameters
    differing = {
        key: (value, defaults[key].default)
        for key, value in (model.get("init_args") or {}).items()
        if key not in BUILT_ELSEWHERE | {"mode"} and (config.stem, key) not in PER_MODE and defaults[key].default != value
    }
    assert not differing, f"{config.name} sets (config, class default): {differing}; make the class default the config's value"


ADAPTIVE = [p for p in CONFIGS if "mode" in (yaml.safe_load(p.read_text())["model"].get("init_args") or {})]


@pytest.mark.parametrize("config", ADAPTIVE, ids=[p.stem for p in ADAPTIVE])
def test_adapt_in_python_takes_the_configs_steps(config):
    """`method.adapt(taskpool)` without max_steps adapts as long as `fit` with the config does."""
    import dawe_merge.methods  # noqa: F401

    settings = yaml.safe_load(config.read_text())
    method = _class(settings["model"]["class_path"])
    assert method.default_steps[settings["model"]["init_args"]["mode"]] == settings["trainer"]["max_steps"]
