"""Load the pretrained model and the per-task experts; build validated task vectors."""
from src.modelpool.paths import resolve_model_path
from src.modelpool.text_pool import TextModelPool

__all__ = ["TextModelPool", "resolve_model_path"]
