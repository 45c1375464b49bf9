"""Heads that read a greedy decode: the label word it spells (exact match), or the number it writes (STS-B).

Evaluation by generation is what the reference did; label-word scoring (heads.py) is its one-step
shortcut, which agrees with it whenever the decode is a label word. These heads see a `Generation`
at test time and, like `LabelWordHead`, the first step's (B, V) logits during adaptation.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dawe_merge.families.seq2seq.answers import match_label_words, parse_number
from dawe_merge.families.seq2seq.decoder import Generation
from dawe_merge.families.seq2seq.heads import EntropyOver, LabelWordHead
from dawe_merge.metrics.task_metrics import AnswerAccuracy, ClassAnswers, SpearmanScore

Decode = Callable[[torch.Tensor], list[str]]  # token ids → texts, special tokens skipped


class GeneratedLabelHead(LabelWordHead):
    """Generation → `ClassAnswers`: the label word the decoded answer is (-1: none, counted wrong), and the
    label words' first-token logits for the loss, the same loss label-word scoring reports.

    Label words may share a first token here: exact match tells them apart by their whole text.
    """

    distinct_first_tokens = False

    def __init__(self, token_ids: list[int], label_words: tuple[str, ...], decode: Decode, entropy_over: EntropyOver = "vocabulary") -> None:
        super().__init__(token_ids, entropy_over)
        self.label_words = tuple(label_words)
        self.decode = decode

    def forward(self, generation: Generation) -> ClassAnswers:
        predicted = match_label_words(self.decode(generation.sequences), self.label_words).to(generation.sequences.device)
        return ClassAnswers(predicted=predicted, logits=super().forward(generation.first_logits))

    def task_metric(self) -> AnswerAccuracy:
        return AnswerAccuracy()


class GeneratedNumberHead(nn.Module):
    """Generation → (B,) the number each answer writes (NaN: none; the metric scores it 0.0 and counts it), scored by Spearman's rho.

    Adaptation takes the entropy of the first step's whole vocabulary: a number has no label words.
    """

    def __init__(self, decode: Decode) -> None:
        super().__init__()
        self.decode = decode

    def forward(self, generation: Generation) -> torch.Tensor:
        values = [parse_number(text, unparsable=float("nan")) for text in self.decode(generation.sequences)]
        return torch.tensor(values, dtype=torch.float32, device=generation.sequences.device)

    def adaptation_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def task_metric(self) -> SpearmanScore:
        return SpearmanScore()
