"""Size and load time of an exported DAWE folder at ViT-B/32 size with 8 dense task vectors (random weights).

Builds a random CLIP ViT-B/32 (the hub's configuration) and a small random ResNet feature extractor in a
temporary folder, stacks 8 random dense task vectors over every vision-tower tensor, and writes the DAWE
folder twice, task vectors in float32 and in bfloat16, side by side in one run. Reported per row: folder
size, task-vector file size, export seconds, `load_dawe` seconds (θ0 read and its digest checked, task
vectors read, ResNet loaded), and one per-sample forward of 4 images; then the bf16/fp32 size ratio.

    python benchmarks/export_size.py [--tasks 8] [--tiny] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


def build(root: Path, tasks: int, tiny: bool):
    """θ0 and the feature extractor on disk, and the DAWE model over random task vectors."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, ConvNextImageProcessor, ResNetConfig, ResNetModel

    from dawe_merge.export.dawe_model import DAWEModel
    from dawe_merge.families.vision import CLIPModelPool
    from dawe_merge.models.features import ResNetFeatures
    from dawe_merge.models.hypernetwork import Hypernetwork
    from dawe_merge.per_sample.merged_forward import TaskVectorMerger

    torch.manual_seed(0)
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4} if tiny else {}
    text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4} if tiny else {}
    CLIPModel(CLIPConfig(text_config=text, vision_config={"patch_size": 32, **vision})).save_pretrained(root / "clip")
    CLIPImageProcessor().save_pretrained(root / "clip")
    ResNetModel(ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic")).save_pretrained(root / "resnet")
    ConvNextImageProcessor(size={"shortest_edge": 64}).save_pretrained(root / "resnet")
    pool = CLIPModelPool(str(root / "clip"), head_cache_dir=str(root / "heads"))
    pretrained = pool.pretrained_model()
    params = dict(pretrained.named_parameters())
    stacked = {name: 0.01 * torch.randn(tasks, *p.shape) for name, p in params.items()}
    merger = TaskVectorMerger(pretrained, stacked)
    features = ResNetFeatures(str(root / "resnet"))
    hypernetwork = Hypernetwork(features.dim, tasks, hidden_layers=1, init_lambda=0.3)
    names = [f"task{t}" for t in range(tasks)]
    return DAWEModel(pool, features, merger, hypernetwork, nn.ModuleDict(), names, "task_wise"), sum(p.numel() for p in params.values())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8, help="Number of dense task vectors.")
    parser.add_argument("--tiny", action="store_true", help="A 2-layer CLIP instead of ViT-B/32 (a quick check of the script).")
    parser.add_argument("--json", type=str, default=None, help="Also write the figures here.")
    args = parser.parse_args(argv)
    from PIL import Image

    from dawe_merge.export.dawe_folder import load_dawe, save_dawe

    root = Path(tempfile.mkdtemp(prefix="export_size_"))
    try:
        model, merged_params = build(root, args.tasks, args.tiny)
        images = [Image.new("RGB", (64, 64), color=(40 * i, 90, 160)) for i in range(4)]
        rows = {}
        for dtype in ("float32", "bfloat16"):
            out = root / f"dawe_{dtype}"
            out.mkdir()
            start = time.perf_counter()
            save_dawe(model, out, dtype)
            written = time.perf_counter() - start
            start = time.perf_counter()
            loaded = load_dawe(out)
            loaded_s = time.perf_counter() - start
            start = time.perf_counter()
            loaded(images)
            forward_s = time.perf_counter() - start
            rows[dtype] = {"folder_mib": folder_bytes(out) / 2**20, "task_vectors_mib": (out / "task_vectors.safetensors").stat().st_size / 2**20,
                           "export_s": written, "load_s": loaded_s, "forward_4_images_s": forward_s}  # fmt: skip
            del loaded
            shutil.rmtree(out)
        figures = {"model": "tiny CLIP" if args.tiny else "CLIP ViT-B/32 (random weights)", "tasks": args.tasks, "merged_parameters": merged_params,
                   "rows": rows, "bf16_over_fp32_folder": rows["bfloat16"]["folder_mib"] / rows["float32"]["folder_mib"]}  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"DAWE folder, {figures['model']}, {args.tasks} dense task vectors over {merged_params / 1e6:.1f} M merged parameters")
    print("| task vectors | folder MiB | task_vectors.safetensors MiB | export s | load_dawe s | forward of 4 images s |")
    print("|---|---|---|---|---|---|")
    for dtype, r in rows.items():
        print(f"| {dtype} | {r['folder_mib']:.0f} | {r['task_vectors_mib']:.0f} | {r['export_s']:.1f} | {r['load_s']:.1f} | {r['forward_4_images_s']:.2f} |")
    print(f"bf16 / fp32 folder size: {figures['bf16_over_fp32_folder']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
