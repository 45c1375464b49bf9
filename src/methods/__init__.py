"""LightningModules, one per method; `class_path` in the configs picks one (LightningCLI is the registry)."""
from src.methods.base import MergedModelModule
from src.methods.expert import ExpertFineTuning
from src.methods.static import Individual, Pretrained, SimpleAverage, TaskArithmetic, TiesMerging

__all__ = [
    "MergedModelModule",
    "ExpertFineTuning",
    "Individual",
    "Pretrained",
    "SimpleAverage",
    "TaskArithmetic",
    "TiesMerging",
]
