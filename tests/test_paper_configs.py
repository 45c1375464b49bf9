"""The paper's hub-named configs, instantiated through the real code path with tiny random stand-ins.

Hub names are mapped to local stand-ins the way a user's machine maps them: the stand-ins are written
into a Hugging Face cache folder (HF_HUB_CACHE) under the hub ids the configs name, and the run is
offline, so `from_pretrained("openai/clip-vit-base-patch32")` and friends resolve from that cache.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dawe_merge.errors import UserFacingError
from dawe_merge.methods.registry import methods
from dawe_merge.models.hypernetwork import Hypernetwork
from dawe_merge.models.hypernetwork_io import load_into
from tests.conftest import ROOT
from tests.hub_cache import cache_repo

pytestmark = pytest.mark.slow

CLIP_TASKS = ["sun397", "stanford_cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]


def cache_model(cache: Path, repo_id: str, folder: Path) -> None:
    """Put a saved model into a Hugging Face hub cache under `repo_id`, in the real layout."""
    cache_repo(cache, repo_id, folder)


@pytest.fixture(scope="module")
def clip_cache(tmp_path_factory):
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetModel

    from tests.test_vision_family import make_tiny_clip

    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    for size in ("clip-vit-base-patch32", "clip-vit-large-patch14"):
        clip = make_tiny_clip(root / size)
        cache_model(cache, f"openai/{size}", clip)
        from dawe_merge.families.vision import CLIPModelPool

        vision = CLIPModelPool(str(clip)).load_pretrained().vision
        for i, task in enumerate(CLIP_TASKS[:2]):  # two experts are enough to build task vectors through the cache
            with torch.no_grad():
                for p in vision.parameters():
                    p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i)))
            vision.save_pretrained(root / f"{size}_{task}")
            cache_model(cache, f"tanganke/{size}_{task.replace('_', '-')}", root / f"{size}_{task}")
    for depth, width in (("18", 512), ("50", 2048)):  # the real pooled widths: the reference hypernetworks need 512
        ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, width], depths=[1, 1], layer_type="basic")).save_pretrained(root / f"resnet{depth}")
        ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(root / f"resnet{depth}")
        cache_model(cache, f"microsoft/resnet-{depth}", root / f"resnet{depth}")
    return cache


SCRIPT = r"""
import json, sys
import dawe_merge.families.vision, dawe_merge.methods
from dawe_merge.cli import cli_main
out = []
from dawe_merge.methods.registry import methods as registered
dawe = [e.name for e in registered() if e.class_path.endswith(".DAWE")]  # DAWE also with the paper's ResNet-50 features
methods = [(e.name, []) for e in registered() if e.name not in dawe]
methods += [(m, overlays) for m in dawe for overlays in ([], ["configs/features/resnet50.yaml"])]
for bench in ("vit_b32", "vit_l14"):
    for method, overlays in methods:
        args = ["--config", f"configs/benchmarks/clip_{bench}.yaml", "--config", f"configs/methods/{method}.yaml"]
        for o in overlays:
            args += ["--config", o]
        if method in dawe:
            args += ["--config", "configs/schedules/dawe_reference.yaml"]
        cli = cli_main(args, run=False)
        pool = cli.model.modelpool
        fx = getattr(cli.model, "feature_extractor", None)
        out.append({"bench": bench, "method": type(cli.model).__name__, "overlays": overlays, "pretrained": pool.pretrained, "tasks": cli.datamodule.task_names,
                    "experts": pool.experts, "features": None if fx is None else [fx.name, fx.dim]})
    model = pool.load_pretrained()
    vectors = pool.task_vectors(cli.datamodule.task_names[:2], model)
    out.append({"bench": bench, "merged": len(vectors[0]), "vision_only": all(n.startswith("vision.") for n in vectors[0])})
print("RESULT " + json.dumps(out))
"""


def test_every_clip_paper_config_instantiates_and_loads_through_the_hub_cache(clip_cache):
    env = {**os.environ, "HF_HUB_CACHE": str(clip_cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.split("RESULT ", 1)[1])
    runs = [r for r in rows if "method" in r]
    dawe_configs = [e for e in methods() if e.class_path.endswith(".DAWE")]
    assert len(runs) == 2 * (len(methods()) + len(dawe_configs))  # every method; DAWE also with ResNet-50 features
    for row in runs:
        size = "clip-vit-base-patch32" if row["bench"] == "vit_b32" else "clip-vit-large-patch14"
        assert row["pretrained"] == f"openai/{size}" and row["tasks"] == CLIP_TASKS
        assert row["experts"] == {t: f"tanganke/{size}_{t.replace('_', '-')}" for t in CLIP_TASKS}
        if row["method"] == "DAWE":
            # the benchmark names ResNet-18 (the reference's); the overlay swaps in ResNet-50
            assert row["features"] == (["microsoft/resnet-50", 2048] if row["overlays"] else ["microsoft/resnet-18", 512])
    for row in (r for r in rows if "merged" in r):
        assert row["merged"] > 0 and row["vision_only"]


def _reference_file(path: Path, d: int, k: int) -> Path:
    """A hypernetwork in the original code's format: a whole pickled Sequential(Linear, ReLU, Linear)."""
    torch.save(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, k)), path)
    return path


def test_reference_clip_hypernetworks_load_task_wise_and_layer_wise_is_refused_with_the_reason(tmp_path):
    expected = {"method": "dawe", "mode": "task_wise", "tasks": CLIP_TASKS, "merged_tensors": None, "num_coefficients": 8, "feature_dim": 512}
    net = Hypernetwork(512, 8, hidden_layers=1, standardize=False)
    load_into(net, _reference_file(tmp_path / "task.pt", 512, 8), expected)
    features = torch.randn(3, 512)
    reference = torch.load(tmp_path / "task.pt", weights_only=False)
    torch.testing.assert_close(net(features), reference(features))
    layer_wise = {**expected, "mode": "layer_wise", "num_coefficients": 8 * 199, "merged_tensors": [f"t{i}" for i in range(199)]}
    with pytest.raises(UserFacingError, match="OpenCLIP.*158.*fused q/k/v"):
        load_into(Hypernetwork(512, 8 * 199, hidden_layers=1), _reference_file(tmp_path / "layer.pt", 512, 8 * 158), layer_wise)
