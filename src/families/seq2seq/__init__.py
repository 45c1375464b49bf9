"""The text-to-text family: encoder-decoders (Flan-T5) answering prompts with label words; LoRA experts through peft."""
from src.families.seq2seq.heads import LabelWordHead, LabelWordTrainingHead
from src.families.seq2seq.modelpool import FirstStepLM, Seq2SeqModelPool
from src.families.seq2seq.taskpool import PromptTask, Seq2SeqTaskPool

__all__ = ["FirstStepLM", "LabelWordHead", "LabelWordTrainingHead", "PromptTask", "Seq2SeqModelPool", "Seq2SeqTaskPool"]
