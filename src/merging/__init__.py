"""Pure functions on state dicts (no Lightning): task vectors and static merges."""
from src.merging.state_dict import StateDict, check_compatible, task_vector, stack_task_vectors
from src.merging.static import simple_average, task_arithmetic, ties_merge

__all__ = [
    "StateDict",
    "check_compatible",
    "task_vector",
    "stack_task_vectors",
    "simple_average",
    "task_arithmetic",
    "ties_merge",
]
