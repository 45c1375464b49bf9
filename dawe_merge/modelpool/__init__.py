"""The ModelPool contract every model family implements: pretrained model, experts, inputs, heads."""
from dawe_merge.modelpool.base import MissingExpertError, ModelPool, parameter_state_dict

__all__ = ["MissingExpertError", "ModelPool", "parameter_state_dict"]
