"""The text-to-text family: encoder-decoders (Flan-T5) answering prompts with label words or numbers; LoRA experts through peft."""
from dawe_merge.families.seq2seq.decoder import FirstStepLM, Generation
from dawe_merge.families.seq2seq.generation_heads import GeneratedLabelHead, GeneratedNumberHead
from dawe_merge.families.seq2seq.heads import LabelWordHead, LabelWordTrainingHead
from dawe_merge.families.seq2seq.modelpool import Seq2SeqModelPool
from dawe_merge.families.seq2seq.taskpool import PromptTask, Seq2SeqTaskPool

__all__ = [
    "FirstStepLM",
    "GeneratedLabelHead",
    "GeneratedNumberHead",
    "Generation",
    "LabelWordHead",
    "LabelWordTrainingHead",
    "PromptTask",
    "Seq2SeqModelPool",
    "Seq2SeqTaskPool",
]
