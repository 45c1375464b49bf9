"""The vision family: CLIP image classification with zero-shot heads from the text tower; corruptions for OOD tests."""
from dawe_merge.families.vision import per_sample  # noqa: F401  (registers CLIP's class token for batched per-sample merging)
from dawe_merge.families.vision.modelpool import CLIPImageEncoder, CLIPModelPool
from dawe_merge.families.vision.taskpool import ImageTask, ImageTaskPool

__all__ = ["CLIPImageEncoder", "CLIPModelPool", "ImageTask", "ImageTaskPool"]
