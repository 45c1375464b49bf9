"""LightningDataModules: per-task test loaders in a named order, adaptation and expert-training loaders."""
from src.taskpool.text_taskpool import TextTask, TextTaskPool

__all__ = ["TextTask", "TextTaskPool"]
