"""The text-encoder family: sentence encoders with zero-shot description heads, on text classification tasks."""
from src.families.text.features import SentenceFeatures
from src.families.text.modelpool import TextModelPool
from src.families.text.taskpool import TextTaskPool
from src.families.text.tasks import TextTask

__all__ = ["SentenceFeatures", "TextModelPool", "TextTask", "TextTaskPool"]
