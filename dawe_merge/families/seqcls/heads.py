"""A sequence classifier split where merging needs it: the base model (merged) and the expert's own head (kept).

transformers' `…ForSequenceClassification.forward` runs the base model, then an architecture's own
head: BERT's pooler output through dropout and a Linear, RoBERTa's first-token MLP, GPT-2's score at
the last non-padding token. Rather than re-implement each, the head here *is* the expert's classifier
with its base model replaced by a stand-in that returns the merged body's outputs, so transformers' own
code computes the logits, for any architecture, exactly as it would on the whole model.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn


class BodyOutputs(NamedTuple):
    """What the merged base model hands every task's head: its outputs and the inputs heads pool with."""

    outputs: Any  # the base model's ModelOutput (last_hidden_state, pooler_output where the architecture has one)
    input_ids: torch.Tensor
    attention_mask: torch.Tensor


class SequenceClassifierBody(nn.Module):
    """The base model of a `…ForSequenceClassification` (e.g. GPT2Model, BertModel): the tensors that merge."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> BodyOutputs:
        """`token_type_ids` mark a sentence pair's second text for the architectures that read them (BERT)."""
        segments = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return BodyOutputs(self.base(input_ids=input_ids, attention_mask=attention_mask, **segments), input_ids, attention_mask)


class _GivenOutputs(nn.Module):
    """Stands where the classifier's base model was and returns what it is given (no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs = None

    def forward(self, *args, **kwargs):
        return self.outputs


class ExpertHead(nn.Module):
    """An expert's classification head (everything of its classifier but the base model), on merged body outputs."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.prefix = classifier.base_model_prefix
        setattr(classifier, self.prefix, _GivenOutputs())
        self.classifier = classifier

    @property
    def num_classes(self) -> int:
        return int(self.classifier.config.num_labels)

    def forward(self, body: BodyOutputs) -> torch.Tensor:
        given = getattr(self.classifier, self.prefix)
        given.outputs = body.outputs
        try:
            return self.classifier(input_ids=body.input_ids, attention_mask=body.attention_mask).logits
        finally:
            given.outputs = None

    def with_body(self, body: SequenceClassifierBody) -> nn.Module:
        """The whole classifier again (this head on `body`'s base model), e.g. to save it in transformers' format."""
        setattr(self.classifier, self.prefix, body.base)
        return self.classifier

    def detach_body(self) -> None:
        setattr(self.classifier, self.prefix, _GivenOutputs())
