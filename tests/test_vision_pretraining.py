"""The offline vision benchmark's own models: training data, the contrastive loss, and folders the hub code path loads."""
from __future__ import annotations

import hashlib
import math
import statistics
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks.offline.robustness_table import robustness_rows
from benchmarks.offline.vision_pretraining import SETS, ContrastiveCLIP, clip, resnet, training_images
from dawe_merge.families.vision import CLIPModelPool, ImageTask, ImageTaskPool
from dawe_merge.families.vision.shipped import load_shipped_images
from dawe_merge.models.features import ResNetFeatures
from dawe_merge.taskpool.tasks import TaskInfo


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def test_pretraining_images_come_from_the_training_splits_only():
    rows = training_images(per_set=40)
    assert len(rows) == 40 * len(SETS)
    for offset, (name, _) in enumerate(SETS):
        splits, classes = load_shipped_images(name)
        train = {_digest(im) for im in splits["train"].with_format("numpy")["image"]}
        mine = [row for row in rows if row[1] // 10 == offset]
        assert len(mine) == 40 and all(_digest(image) in train for image, *_ in mine)
        assert all(classes[key % 10] == class_name for _, key, class_name, _ in mine), "key and caption class agree"


def test_pairs_sharing_a_caption_are_all_positives():
    """Logits that single out each caption group perfectly are a minimum: loss = the targets' own entropy, no gradient."""
    keys = torch.tensor([0, 0, 1, 2, 2, 2])
    same = (keys[:, None] == keys[None, :]).float()
    logits = (50.0 * same).requires_grad_()  # each image equally close to every caption of its group, far from the others
    module = ContrastiveCLIP(lambda **_: SimpleNamespace(logits_per_image=logits, logits_per_text=logits.T), lr=1e-3, steps=1)
    module.log = lambda *a, **k: None
    loss = module.training_step({"input_ids": None, "attention_mask": None, "pixel_values": None, "key": keys}, 0)
    assert float(loss.detach()) == pytest.approx(float(same.sum(1).log().mean()), abs=1e-4)
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.abs().max() < 1e-6
    diagonal_only = torch.nn.functional.cross_entropy(logits, torch.arange(6))  # plain CLIP targets push duplicates apart
    assert torch.autograd.grad(diagonal_only, logits)[0].abs().max() > 0.05


def test_pretrained_folders_load_through_the_hub_code_path(tmp_path):
    clip(out=str(tmp_path / "clip"), steps=2, batch_size=8, per_set=8, width=32, layers=1)
    resnet(out=str(tmp_path / "resnet"), steps=2, batch_size=8, per_set=8)
    assert not (tmp_path / "clip.partial").exists()
    pool = CLIPModelPool(str(tmp_path / "clip"), head_cache_dir=str(tmp_path / "heads"))
    model = pool.load_pretrained()
    images = ImageTaskPool([ImageTask("digits", shipped="digits")]).collate([{"image": image, "label": 0} for image in load_shipped_images("digits")[0]["test"]["image"][:3]])["image"]
    inputs = pool.prepare_inputs({"image": images}, torch.device("cpu"))
    assert inputs["pixel_values"].shape == (3, 3, 28, 28)
    head = pool.build_head(TaskInfo("digits", tuple("0123456789"), ('a photo of the number: "{}".',)), model)
    logits = head(model(**inputs))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    features = ResNetFeatures(str(tmp_path / "resnet")).features({"image": images})
    assert features.shape == (3, 128) and torch.isfinite(features).all()


def test_robustness_rows_compare_clean_and_corrupted_averages():
    def report(acc: float) -> dict:
        return {"average": {"accuracy": acc, "loss": 1.0}}

    clean = {"ties": report(0.8), "task_arithmetic": report(0.9), "dawe_task_wise": report(0.95), "pretrained": report(0.5)}
    corrupted = {"noise": {"task_arithmetic": report(0.6), "ties": report(0.5)}, "blur": {"task_arithmetic": report(0.7), "dawe_task_wise": report(0.9)}}
    rows = robustness_rows(clean, corrupted)
    assert [r["method"] for r in rows] == ["task_arithmetic", "ties", "dawe_task_wise"], "pretrained has no corrupted run; known order first"
    ta = rows[0]
    assert ta["clean"] == pytest.approx(90.0) and ta["noise"] == pytest.approx(60.0) and ta["corrupted mean"] == pytest.approx(65.0)
    assert rows[1]["blur"] is None and rows[1]["corrupted mean"] is None, "a missing run is shown, never averaged away"
    assert math.isclose(rows[2]["blur"], 90.0)


def test_robustness_rows_average_the_seeds_every_column_has():
    def report(acc: float, seed: int) -> dict:
        return {"average": {"accuracy": acc, "loss": 1.0}, "seed": seed}

    clean = {"dawe_task_wise": report(0.9, 0), "dawe_task_wise_seed1": report(0.8, 1), "dawe_task_wise_seed2": report(0.7, 2)}
    corrupted = {
        "noise": {"dawe_task_wise": report(0.6, 0), "dawe_task_wise_seed1": report(0.4, 1)},
        "blur": {"dawe_task_wise": report(0.5, 0), "dawe_task_wise_seed1": report(0.3, 1), "dawe_task_wise_seed2": report(0.1, 2)},
    }
    (row,) = robustness_rows(clean, corrupted)
    assert row["seeds"] == [0, 1], "seed 2 has no noise run: every column averages seeds 0 and 1 only"
    assert row["clean"] == pytest.approx(85.0) and row["clean sd"] == pytest.approx(statistics.stdev([90.0, 80.0]))
    # per seed, the mean over corruptions: seed 0 (60 + 50) / 2 = 55, seed 1 (40 + 30) / 2 = 35
    assert row["blur"] == pytest.approx(40.0), "blur's seed 2 (10 %) is left out with the seed the noise column lacks"
    assert row["corrupted mean"] == pytest.approx(45.0) and row["corrupted mean sd"] == pytest.approx(statistics.stdev([55.0, 35.0]))


@pytest.mark.parametrize("method", ["pretrained", "task_arithmetic", "ties", "adamerging_layer_wise", "dawe_task_wise", "dawe_layer_wise", "expert"])
def test_offline_vision_benchmark_stacks_before_every_method(method, tmp_path):
    from dawe_merge.cli import cli_main
    from tests.conftest import ROOT

    args = ["--config", str(ROOT / "configs/benchmarks/vision_small.yaml"), "--config", str(ROOT / f"configs/methods/{method}.yaml")]
    if method.startswith("dawe"):
        resnet(out=str(tmp_path / "resnet"), steps=1, batch_size=4, per_set=2)
        args += ["--features.init_args.model", str(tmp_path / "resnet")]
    cli = cli_main(args, run=False)
    pool, data = cli.model.modelpool, cli.datamodule
    assert type(pool).__name__ == "CLIPModelPool" and pool.pretrained == "models/vision_small/clip" and pool.experts_dir == "experts/vision_small"
    assert data.benchmark == "vision_small" and data.task_names == ["fashion_mnist", "mnist", "animals", "digits"]
    assert all(t.max_test % 2 == 0 for t in data.tasks), "even test sizes keep DDP evaluation exact"
    if method.startswith("dawe"):
        assert cli.model.feature_extractor.dim == 128
