"""One picture of every corruption on the first test image of each shipped image set.

python -m benchmarks.offline.corruption_grid results/vision_corruptions/grid_severity3.png --severity 3
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from dawe_merge.families.vision.corruptions import save_grid
from dawe_merge.families.vision.shipped import SHIPPED_IMAGE_SETS, load_shipped_images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--severity", type=int, default=3, help="1 (mild) to 5 (strong)")
    args = parser.parse_args(argv)
    images = {}
    for name in SHIPPED_IMAGE_SETS:
        splits, classes = load_shipped_images(name)
        first = splits["test"].with_format("numpy")[0]
        enlarged = Image.fromarray(first["image"].astype(np.uint8)).resize((56, 56), Image.NEAREST)  # visible pixels
        images[f"{name}: {classes[int(first['label'])]}"] = np.asarray(enlarged)
    save_grid(images, args.severity, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
