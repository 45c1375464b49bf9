"""LightningModules, one per method; `class_path` in the configs picks one (LightningCLI is the registry)."""
from dawe_merge.methods.adamerging import AdaMerging
from dawe_merge.methods.base import MergedModelModule
from dawe_merge.methods.close_call_threshold import CloseCallThreshold
from dawe_merge.methods.cuda_graphs import CudaGraphs
from dawe_merge.methods.dawe import DAWE
from dawe_merge.methods.expert import ExpertFineTuning
from dawe_merge.methods.static import Individual, Pretrained, SimpleAverage, TaskArithmetic, TiesMerging
from dawe_merge.methods.tf32 import TF32

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
