"""The image path (CLIP's and the ResNet's processors) with torchvision absent and with one that does not import."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CLIP = ROOT / "tests/fixtures/hub_formats/clip"  # a processor folder written by transformers 4.46

BUILD = r"""
import sys
import numpy as np
from PIL import Image
from dawe_merge.models.image_processor import load_image_processor

image = Image.fromarray(np.full((40, 50, 3), 255, dtype=np.uint8))
processor = load_image_processor(sys.argv[1])
pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
print(type(processor).__name__, tuple(pixels.shape), [round(float(v), 4) for v in pixels[0, :, 0, 0]])
"""

BLOCK_TORCHVISION = "import sys; sys.modules['torchvision'] = None\n"  # `import torchvision` then fails as if not installed


def test_the_clip_processor_builds_with_torchvision_absent():
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCHVISION + BUILD, str(CLIP)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    name, shape, corner = proc.stdout.strip().split(" ", 1)[0], *proc.stdout.strip().split(" ", 1)[1].rsplit(" [", 1)
    assert name.startswith("CLIPImageProcessor") and shape.replace(" ", "") == "(1,3,32,32)"
    # a white image: (1 - mean) / std per channel with CLIP's mean and std
    expected = [round((1 - m) / s, 4) for m, s in zip((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))]
    assert [float(v) for v in corner.rstrip("]").split(",")] == expected


def test_a_torchvision_that_does_not_import_gets_one_line_naming_versions_and_fix(tmp_path: Path):
    """A stand-in for torchvision 0.26 beside a transformers that expects other names: installed, but not importable."""
    package = tmp_path / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text('__version__ = "0.26.0"\n')
    (package / "io.py").write_text("")  # no ImageReadMode, decode_image, VideoReader ...
    info = tmp_path / "torchvision-0.26.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\nVersion: 0.26.0\n")
    code = BUILD.replace("processor = load_image_processor(sys.argv[1])", "try:\n    processor = load_image_processor(sys.argv[1])\nexcept Exception as err:\n    print(type(err).__name__, err); sys.exit(3)")
    env = {"PYTHONPATH": f"{tmp_path}", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code, str(CLIP)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    line = proc.stdout.strip()
    assert line.startswith("MissingPackageError transformers ") and "torchvision 0.26.0" in line and "pip uninstall torchvision" in line
    assert "\n" not in line
