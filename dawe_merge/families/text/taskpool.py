"""The text family's TaskPool: shipped corpora or hub datasets, batches of raw texts (`text`)."""
from __future__ import annotations

import datasets

from dawe_merge.families.text.heldout_corpora import HELDOUT_CORPORA
from dawe_merge.families.text.tasks import TextTask, load_text_task, shipped_corpus
from dawe_merge.taskpool.base import TaskPool
from dawe_merge.taskpool.tasks import TaskInfo


class TextTaskPool(TaskPool):
    """Text classification tasks; batches carry `text` (list of str), `label` when labelled, `index`.

    Args:
        tasks: the tasks, in the order reports and coefficients use.
    """

    def __init__(self, tasks: list[TextTask], **kwargs) -> None:
        super().__init__(tasks, **kwargs)

    def load_task(self, task: TextTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
        return load_text_task(task)

    def held_out_tasks(self) -> list[str]:
        """The tasks read from a held-out corpus (heldout_corpora.py): they check the defaults, nothing is chosen on them."""
        return [t.name for t in self.tasks if shipped_corpus(t) in HELDOUT_CORPORA]
