"""LightningModules, one per method; `class_path` in the configs picks one (LightningCLI is the registry)."""
from src.methods.adamerging import AdaMerging
from src.methods.base import MergedModelModule
from src.methods.close_call_threshold import CloseCallThreshold
from src.methods.dawe import DAWE
from src.methods.expert import ExpertFineTuning
from src.methods.static import Individual, Pretrained, SimpleAverage, TaskArithmetic, TiesMerging

__all__ = [
    "AdaMerging",
    "CloseCallThreshold",
    "DAWE",
    "MergedModelModule",
    "ExpertFineTuning",
    "Individual",
    "Pretrained",
    "SimpleAverage",
    "TaskArithmetic",
    "TiesMerging",
]
