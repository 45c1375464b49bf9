"""The modality-free TaskPool (a LightningDataModule) that every family's task data plugs into."""
from dawe_merge.taskpool.base import TaskPool
from dawe_merge.taskpool.tasks import DatasetLoadError, Task, TaskInfo

__all__ = ["DatasetLoadError", "Task", "TaskInfo", "TaskPool"]
