"""LightningModules, one per method; `class_path` in the configs picks one (LightningCLI is the registry)."""
from src.methods.adamerging import AdaMerging
from src.methods.base import MergedModelModule
from src.methods.close_call_threshold import CloseCallThreshold
from src.methods.cuda_graphs import CudaGraphs
from src.methods.dawe import DAWE
from src.methods.expert import ExpertFineTuning
from src.methods.static import Individual, Pretrained, SimpleAverage, TaskArithmetic, TiesMerging
from src.methods.tf32 import TF32

__all__ = [
    "AdaMerging",
    "CloseCallThreshold",
    "CudaGraphs",
    "DAWE",
    "MergedModelModule",
    "ExpertFineTuning",
    "Individual",
    "Pretrained",
    "SimpleAverage",
    "TF32",
    "TaskArithmetic",
    "TiesMerging",
]
