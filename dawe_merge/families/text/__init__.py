"""The text-encoder family: sentence encoders with zero-shot description heads, on text classification tasks."""
from dawe_merge.families.text.features import SentenceFeatures
from dawe_merge.families.text.modelpool import TextModelPool
from dawe_merge.families.text.taskpool import TextTaskPool
from dawe_merge.families.text.tasks import TextTask

__all__ = ["SentenceFeatures", "TextModelPool", "TextTask", "TextTaskPool"]
