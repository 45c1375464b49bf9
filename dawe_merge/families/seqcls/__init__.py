"""The sequence-classification family: `AutoModelForSequenceClassification` experts with their own heads (GPT-2 on GLUE,
BERT/RoBERTa classifiers), on text classification tasks (single texts or sentence pairs)."""
from dawe_merge.families.seqcls.heads import BodyOutputs, ExpertHead, SequenceClassifierBody
from dawe_merge.families.seqcls.modelpool import SeqClsModelPool
from dawe_merge.families.text import TextTask, TextTaskPool

__all__ = ["BodyOutputs", "ExpertHead", "SeqClsModelPool", "SequenceClassifierBody", "TextTask", "TextTaskPool"]
