"""The ModelPool contract every model family implements: pretrained model, experts, inputs, heads."""
from src.modelpool.base import MissingExpertError, ModelPool, parameter_state_dict

__all__ = ["MissingExpertError", "ModelPool", "parameter_state_dict"]
