"""T5's span corruption: the unsupervised objective that teaches an encoder-decoder to read text and write text.

Kept apart from the training loop so its rules can be checked on token lists alone. As in T5 (Raffel et al.,
2020): a share of the tokens (`noise_density`) is dropped in spans whose lengths average `mean_span_length`;
the input keeps the rest with one sentinel in place of each span, and the target lists each sentinel followed
by the span it replaced. Sentinels are numbered in order of appearance, so the model learns a fixed protocol:
the first answer token is always the first sentinel.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _random_partition(total: int, parts: int, rng: np.random.Generator) -> list[int]:
    """`total` split into `parts` positive lengths, uniformly among all such splits (T5's `_random_segmentation`)."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False)) if parts > 1 else np.array([], dtype=int)
    bounds = np.concatenate([[0], cuts, [total]])
    return np.diff(bounds).astype(int).tolist()


def noise_spans(length: int, noise_density: float, mean_span_length: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(start, end) of each dropped span, in order; never the first token, never two spans touching.

    round(length × density) tokens are dropped (at least one) in round(dropped / mean length) spans (at least one);
    kept and dropped runs alternate, starting with a kept one, so every span has kept text before it (and, as in
    T5, the text ends with a dropped span).
    """
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    noise = min(max(int(round(length * noise_density)), 1), length - 1)
    spans = max(int(round(noise / mean_span_length)), 1)
    spans = min(spans, noise, length - noise)  # each span and each kept run before it needs a token
    noise_lengths = _random_partition(noise, spans, rng)
    kept_lengths = _random_partition(length - noise, spans, rng)
    out, position = [], 0
    for kept, dropped in zip(kept_lengths, noise_lengths):
        position += kept
        out.append((position, position + dropped))
        position += dropped
    return out


def corrupt_spans(
    tokens: Sequence[int], sentinels: Sequence[int], noise_density: float = 0.15, mean_span_length: float = 3.0, rng: np.random.Generator | None = None
) -> tuple[list[int], list[int]]:
    """(inputs, targets): the tokens with each dropped span replaced by its sentinel, and sentinel + span for each span.

    `sentinels` are the token ids used in order (the first span gets sentinels[0]); neither list gets an end
    token here, the caller appends its own.
    """
    rng = rng if rng is not None else np.random.default_rng()
    spans = noise_spans(len(tokens), noise_density, mean_span_length, rng)
    if len(spans) > len(sentinels):
        raise ValueError(f"{len(spans)} spans need as many sentinels, only {len(sentinels)} given")
    inputs, targets, previous = [], [], 0
    for sentinel, (start, end) in zip(sentinels, spans):
        inputs += [*tokens[previous:start], sentinel]
        targets += [sentinel, *tokens[start:end]]
        previous = end
    inputs += tokens[previous:]
    return list(inputs), list(targets)
