"""The module every method merges for the text-to-text family: one decoder step, or a greedy decode when evaluated."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Generation(NamedTuple):
    """A greedy decode: the answer tokens, and the first step's logits (what label-word scoring reads)."""

    sequences: torch.Tensor  # (B, S) generated ids, the decoder start token first, padded after an early stop
    first_logits: torch.Tensor  # (B, V) logits of the first answer token


class FirstStepLM(nn.Module):
    """An encoder-decoder run for one decoder step from its start token: (B, V) logits of the first answer token.

    With `max_new_tokens > 0` (evaluation by generation) it decodes greedily with `generate` instead and
    returns a `Generation`. The option is an input, not a mode, so it reaches the model through every
    method's forward: a merge shared by the batch (`functional_call` keeps the merged weights for the
    whole call, every decoding step included) and exact per-sample merging (its patched layers see a
    batch of B at every step: greedy decoding keeps finished rows, padded, until all are done).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int = 0) -> torch.Tensor | Generation:
        if max_new_tokens > 0:
            return self.generate(input_ids, attention_mask, max_new_tokens)
        start = self.model.config.decoder_start_token_id
        decoder_input_ids = torch.full((input_ids.shape[0], 1), int(start), dtype=torch.long, device=input_ids.device)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits[:, 0]

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int) -> Generation:
        """Greedy decoding by transformers' `generate`, whatever the checkpoint's generation config asks for."""
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            output_logits=True,
            return_dict_in_generate=True,
        )
        return Generation(out.sequences, out.logits[0])
