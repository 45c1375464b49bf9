"""Every hub id the configs name is one that was checked against its source (tests/verified_hub_ids.yaml)."""
from __future__ import annotations

import yaml

from dawe_merge.paths import is_hub_id
from tests.conftest import ROOT

VERIFIED = yaml.safe_load((ROOT / "tests/verified_hub_ids.yaml").read_text())
MODEL_KEYS = {"pretrained", "model"}  # pools' primary models and feature extractors


def _walk(node, found: dict[str, set[str]]) -> None:
    """Collect model and dataset references from a parsed config, wherever they sit."""
    if isinstance(node, list):
        for item in node:
            _walk(item, found)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in MODEL_KEYS and isinstance(value, str):
            found["models"].add(value)
        elif key == "experts" and isinstance(value, dict):
            found["models"].update(v for v in value.values() if isinstance(v, str))
        elif key == "hub_path" and isinstance(value, str):
            found["datasets"].add(f"{value}:{node['hub_config']}" if node.get("hub_config") else value)
        else:
            _walk(value, found)


def config_hub_ids() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"models": set(), "datasets": set()}
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        _walk(yaml.safe_load(path.read_text()), found)
    return {"models": {m for m in found["models"] if is_hub_id(m)}, "datasets": {d for d in found["datasets"] if is_hub_id(d.split(":")[0])}}


def test_every_hub_id_in_the_configs_was_verified_against_its_source():
    named = config_hub_ids()
    assert len(named["models"]) == 47 and len(named["datasets"]) == 16  # the walk reaches the paper configs
    for kind in ("models", "datasets"):
        unverified = sorted(named[kind] - set(VERIFIED[kind]))
        assert not unverified, f"{kind} named in configs/ but not in tests/verified_hub_ids.yaml: {unverified}"
    assert all(isinstance(source, str) and source for entries in VERIFIED.values() for source in entries.values())


def test_the_ids_found_wrong_stay_fixed():
    named = config_hub_ids()
    assert "tanganke/clip-vit-base-patch32_stanford-cars" in named["models"]
    assert not any("stanford_cars" in m for m in named["models"])  # the expert repos use a hyphen
    assert {"ufldl-stanford/svhn:cropped_digits", "ylecun/mnist"} <= named["datasets"]
    assert not any(d.startswith(("tanganke/svhn", "tanganke/mnist", "glue:")) for d in named["datasets"])
