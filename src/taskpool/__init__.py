"""The modality-free TaskPool (a LightningDataModule) that every family's task data plugs into."""
from src.taskpool.base import TaskPool
from src.taskpool.tasks import DatasetLoadError, Task, TaskInfo

__all__ = ["DatasetLoadError", "Task", "TaskInfo", "TaskPool"]
