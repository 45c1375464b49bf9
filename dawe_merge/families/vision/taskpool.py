"""The vision family's TaskPool: image classification datasets (hub names or `save_to_disk` folders), optionally corrupted.

Batches carry raw images under `image` (PIL images or uint8 arrays): the CLIP processor and DAWE's
ResNet processor each prepare their own view of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
from PIL import Image

from dawe_merge.errors import ConfigError
from dawe_merge.families.vision.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from dawe_merge.families.vision.shipped import SHIPPED_IMAGE_SETS, load_shipped_images
from dawe_merge.families.vision.templates import templates_for
from dawe_merge.taskpool.base import TaskPool
from dawe_merge.taskpool.loaders import collate_rows
from dawe_merge.taskpool.sources import check_columns, read_splits
from dawe_merge.taskpool.tasks import DatasetLoadError, Task, TaskInfo


@dataclass
class ImageTask(Task):
    """An image classification task read with `datasets` (hub id such as tanganke/eurosat, or a save_to_disk folder)."""

    shipped: str | None = None  # an image set that ships offline: fashion_mnist, mnist_5k, animal_mnist, digits (replaces hub_path)
    hub_path: str | None = None  # `datasets.load_dataset` path or a `save_to_disk` folder (default: tanganke/<name>)
    hub_config: str | None = None  # its configuration name, if any
    train_split: str = "train"  # split used to fine-tune the expert
    test_split: str = "test"  # split used for adaptation and evaluation
    image_column: str = "image"  # column holding the image
    label_column: str = "label"  # column holding the integer class
    class_names: list[str] | None = None  # one name per class for the templates (default: the ClassLabel names)
    templates: str | list[str] | None = None  # template set name (dawe_merge/families/vision/templates.py) or a list; default: by task name


def load_image_task(task: ImageTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
    if task.shipped is not None:
        if task.shipped not in SHIPPED_IMAGE_SETS:
            raise DatasetLoadError(f"Task '{task.name}': unknown shipped image set '{task.shipped}'; shipped: {', '.join(SHIPPED_IMAGE_SETS)}.")
        splits, names = load_shipped_images(task.shipped)
        return splits, TaskInfo(task.name, tuple(task.class_names or names), templates_for(task.templates, task.name))
    splits = read_splits(task.name, task.hub_path or f"tanganke/{task.name}", task.hub_config, task.train_split, task.test_split)
    check_columns(task.name, splits, [task.image_column, task.label_column])
    renamed = {
        s: ds.select_columns([task.image_column, task.label_column]).rename_columns({task.image_column: "image", task.label_column: "label"})
        if task.image_column != "image" or task.label_column != "label"
        else ds.select_columns(["image", "label"])
        for s, ds in splits.items()
    }
    feature = renamed["train"].features["label"]
    names = task.class_names or (list(feature.names) if isinstance(feature, datasets.ClassLabel) else None)
    if names is None:
        raise DatasetLoadError(f"Task '{task.name}': labels are not a ClassLabel; give class_names.")
    readable = [n.replace("_", " ") for n in names]
    return renamed, TaskInfo(task.name, tuple(readable), templates_for(task.templates, task.name))


class ImageTaskPool(TaskPool):
    """Image classification tasks; `corruption` replaces every test image by its corrupted version.

    Args:
        tasks: the tasks, in the order reports and coefficients use.
        corruption: one of gaussian_noise, impulse_noise, motion_blur, pixelate, contrast, jpeg, spatter (None: clean).
            Results then go to `<benchmark>_<corruption>` unless the benchmark name already names the corruption.
        severity: 1 (mild) to 5 (strong).
    """

    def __init__(self, tasks: list[ImageTask], corruption: str | None = None, severity: int = 3, **kwargs) -> None:
        if corruption is not None and corruption not in CORRUPTIONS:
            raise ConfigError(f"Unknown corruption '{corruption}'; known: {', '.join(CORRUPTIONS)}.")
        if severity not in SEVERITIES:
            raise ConfigError(f"severity must be one of {SEVERITIES}, got {severity}.")
        super().__init__(tasks, **kwargs)
        self.corruption = corruption
        self.severity = severity
        if corruption is not None and corruption not in self.benchmark:
            self.benchmark = f"{self.benchmark}_{corruption}"  # never written over the clean results of the same benchmark

    def load_task(self, task: ImageTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
        return load_image_task(task)

    def collate(self, rows: list[dict]) -> dict:
        """Images stay a list (sizes may differ), as RGB PIL images; arrays (shipped sets, corruptions) are converted."""
        batch = collate_rows([{k: v for k, v in row.items() if k != "image"} for row in rows])
        batch["image"] = [_rgb(row["image"]) for row in rows]
        return batch

    def setup(self, stage: str | None = None) -> None:
        first = not self._splits
        super().setup(stage)
        if first and self.corruption is not None:
            for task in self.task_names:
                self._splits[task]["test"] = self._splits[task]["test"].with_transform(self._corrupt_rows)

    def _corrupt_rows(self, rows: dict) -> dict:
        """Each test image corrupted with a generator seeded by its index: the same damage in every run and process."""
        images = [corrupt(np.asarray(_rgb(image)), self.corruption, self.severity, seed=int(i)) for image, i in zip(rows["image"], rows["index"])]
        return {**rows, "image": images}


def _rgb(image) -> Image.Image:
    """A PIL image, an array or nested lists (an Array2D row) as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
