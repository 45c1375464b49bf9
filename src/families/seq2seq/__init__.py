"""The text-to-text family: encoder-decoders (Flan-T5) answering prompts with label words or numbers; LoRA experts through peft."""
from src.families.seq2seq.decoder import FirstStepLM, Generation
from src.families.seq2seq.generation_heads import GeneratedLabelHead, GeneratedNumberHead
from src.families.seq2seq.heads import LabelWordHead, LabelWordTrainingHead
from src.families.seq2seq.modelpool import Seq2SeqModelPool
from src.families.seq2seq.taskpool import PromptTask, Seq2SeqTaskPool

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
