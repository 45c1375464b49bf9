"""The vision family: CLIP image classification with zero-shot heads from the text tower; corruptions for OOD tests."""
from src.families.vision.modelpool import CLIPImageEncoder, CLIPModelPool
from src.families.vision.taskpool import ImageTask, ImageTaskPool

__all__ = ["CLIPImageEncoder", "CLIPModelPool", "ImageTask", "ImageTaskPool"]
