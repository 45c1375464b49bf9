"""Pure functions on state dicts (no Lightning): task vectors and static merges."""
from dawe_merge.merging.low_rank import FactorStack, LowRankDelta, TaskVector
from dawe_merge.merging.state_dict import StateDict, check_compatible, stack_task_vectors, task_vector
from dawe_merge.merging.static import simple_average, task_arithmetic, ties_merge

__all__ = [
    "FactorStack",
    "LowRankDelta",
    "StateDict",
    "TaskVector",
    "check_compatible",
    "task_vector",
    "stack_task_vectors",
    "simple_average",
    "task_arithmetic",
    "ties_merge",
]
