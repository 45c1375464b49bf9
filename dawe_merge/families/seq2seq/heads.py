"""Classification as text-to-text: label words scored from the decoder's first step.

The first generated token decides the answer when label words start with different tokens, so one
decoder step gives (B, V) logits, and a label word's score is its first token's logit. That is what
greedy generation would pick among the label words, at the cost of one step instead of a decode.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

EntropyOver = Literal["vocabulary", "label_words"]


class LabelWordHead(nn.Module):
    """(B, V) first-step logits → (B, C) scores of the label words' first tokens.

    `adaptation_logits` is what test-time adaptation takes the entropy of: the whole vocabulary (as the
    original DAWE code did) or the label words only.
    """

    distinct_first_tokens = True  # scoring one step tells label words apart only by their first token

    def __init__(self, token_ids: list[int], entropy_over: EntropyOver = "vocabulary") -> None:
        super().__init__()
        if self.distinct_first_tokens and len(set(token_ids)) != len(token_ids):
            raise ValueError("label words must start with different tokens")
        self.register_buffer("token_ids", torch.tensor(token_ids, dtype=torch.long))
        self.entropy_over = entropy_over

    @property
    def num_classes(self) -> int:
        return int(self.token_ids.numel())

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, self.token_ids]

    def adaptation_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.entropy_over == "vocabulary" else self(logits)


class LabelWordTrainingHead(LabelWordHead):
    """The label words plus one more class holding every other token (their log-sum-exp).

    Cross-entropy over these C + 1 logits with a label-word target equals the full-vocabulary
    cross-entropy of that word's first token, i.e. the usual seq2seq loss on the first answer token,
    so an expert learns to *generate* its label words while `ExpertFineTuning` stays generic.
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        others = logits.index_fill(1, self.token_ids, float("-inf")).logsumexp(-1, keepdim=True)
        return torch.cat([logits[:, self.token_ids], others], dim=-1)
