"""Reading generated answers the way the reference scored them: exact label words, and numbers for STS-B.

The reference compares decoded text to the target after stripping whitespace, then punctuation, from
both ends (no lower-casing: Flan-T5 answers in the label words' own case), and reads an STS-B answer
with Python's `float`, an unparsable one counting as 0.0. Kept apart from the heads so the rules
can be checked on strings alone.
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

import torch


def normalize_answer(text: str) -> str:
    """Whitespace, then punctuation, stripped from both ends: `" 'yes'. "` → `yes`."""
    return text.strip().strip(string.punctuation)


def match_label_words(answers: Sequence[str], label_words: Sequence[str]) -> torch.Tensor:
    """(B,) index of the label word each answer is, after normalising both; -1 for an answer that is none."""
    index = {normalize_answer(word): i for i, word in reversed(list(enumerate(label_words)))}
    return torch.tensor([index.get(normalize_answer(a), -1) for a in answers], dtype=torch.long)


def _joined_number(text: str) -> str:
    """A number a WordPiece decode split ("3. 5", "- 2. 0") written whole again; SentencePiece decodes (T5) never split one."""
    return re.sub(r"^(\s*)-\s+(?=\d)", r"\1-", re.sub(r"(?<=\d)\s*\.\s+(?=\d)", ".", text))


def parse_number(text: str, unparsable: float = 0.0) -> float:
    """The answer as a float, `unparsable` (0.0, the reference's score) if it is not one.

    `float` accepts surrounding whitespace (" 4 " → 4.0) and refuses "2.0.1", "five" and "". It also
    reads "nan" and "inf", which would make the correlation undefined; those count as unparsable too
    (the reference let them through).
    """
    try:
        value = float(_joined_number(text))
    except ValueError:
        return unparsable
    return value if math.isfinite(value) else unparsable
