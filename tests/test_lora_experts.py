"""LoRA experts through peft in the text family: trained by `fit`, read as factored task vectors, merged by every method."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from dawe_merge.families.text import TextModelPool
from dawe_merge.merging.low_rank import LowRankDelta
from dawe_merge.modelpool.lora import merged_adapter
from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli, small_data_config

LORA = ["--model.init_args.modelpool.init_args.lora", json.dumps({"r": 4, "lora_alpha": 8, "lora_dropout": 0.0})]


@pytest.fixture(scope="module")
def lora_experts(tiny_pool, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    data = small_data_config(root / "data.yaml")
    experts = root / "experts"
    for task in TASKS:
        run_cli(["fit", "--config", str(data), "--config", str(ROOT / "configs/methods/expert.yaml"), *pool_overrides(tiny_pool), *LORA,
                 "--model.init_args.modelpool.init_args.experts_dir", str(experts), "--model.init_args.task", task, "--model.init_args.lr", "1e-2",
                 *quiet_trainer(root / task), "--trainer.max_steps", "3"])  # fmt: skip
    return {"pretrained": tiny_pool["pretrained"], "experts_dir": str(experts), "data": data, "root": root}


def test_fit_saves_an_adapter_whose_factors_are_the_merged_minus_base_delta(lora_experts):
    folder = Path(lora_experts["experts_dir"]) / TASKS[0]
    assert (folder / "adapter_config.json").exists() and not (folder / "model.safetensors").exists()
    pool = TextModelPool(lora_experts["pretrained"], experts_dir=lora_experts["experts_dir"])
    model = pool.load_pretrained()
    vectors = pool.task_vectors(TASKS, model)
    for task, vector in zip(TASKS, vectors):
        assert vector and all(isinstance(u, LowRankDelta) for u in vector.values())
        assert all(n.endswith(("query.weight", "value.weight")) for n in vector), "LoRA touches only the adapted tensors"
        merged = dict(merged_adapter(AutoModel.from_pretrained(lora_experts["pretrained"]), Path(lora_experts["experts_dir"]) / task).named_parameters())
        base = dict(AutoModel.from_pretrained(lora_experts["pretrained"]).named_parameters())
        for name, update in vector.items():  # peft's merged weights minus the base = the factored update
            host = name.removeprefix("backbone.")
            torch.testing.assert_close(update.dense(), (merged[host] - base[host]).detach(), atol=1e-6, rtol=1e-5)
        untouched = [n for n in base if not n.endswith(("query.weight", "value.weight"))]
        assert all(torch.equal(merged[n], base[n]) for n in untouched)


@pytest.mark.parametrize("method", ["individual", "task_arithmetic", "ties", "dawe_layer_wise"])
def test_every_method_runs_on_lora_experts(method, lora_experts, tmp_path):
    pool = {k: lora_experts[k] for k in ("pretrained", "experts_dir")}
    common = ["--config", str(lora_experts["data"]), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *pool_overrides(pool), *quiet_trainer(tmp_path)]
    extra = []
    if method.startswith("dawe"):
        run_cli(["fit", *common, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"])
        extra = ["--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt")]
    cli = run_cli(["test", *common, *extra])
    report = json.loads((tmp_path / "results/tiny" / method / "report.json").read_text())
    assert set(TASKS) <= set(report)
    if method.startswith("dawe"):
        merger = cli.model.merger
        assert merger._factored == set(merger.names) and all(n.endswith(("query.weight", "value.weight")) for n in merger.names)
        assert cli.model.num_coefficients == len(TASKS) * 4  # 2 layers × (query, value)


def test_an_adapter_made_for_another_model_is_named_as_such(lora_experts, tmp_path):
    import shutil

    import peft

    from dawe_merge.errors import UserFacingError
    from tests.conftest import make_tiny_bert
    from tests.test_seq2seq_family import make_tiny_t5

    wider = make_tiny_bert(tmp_path / "wider", hidden=48)  # same architecture, another size: another base model
    pool = TextModelPool(str(wider), experts_dir=lora_experts["experts_dir"])
    with pytest.raises(UserFacingError, match=r"was made for another base model \(.*\): its update of 'encoder.layer.0.attention.self.query' is 32×32, the pretrained model's layer is 48×48"):
        pool.task_vectors(TASKS, pool.load_pretrained())
    from transformers import AutoModelForSeq2SeqLM

    t5 = peft.get_peft_model(AutoModelForSeq2SeqLM.from_pretrained(make_tiny_t5(tmp_path / "t5")), peft.LoraConfig(r=2, target_modules=["q", "v"]))
    t5.save_pretrained(tmp_path / "t5_adapter")
    pool = TextModelPool(lora_experts["pretrained"], experts={TASKS[0]: str(tmp_path / "t5_adapter"), TASKS[1]: str(Path(lora_experts["experts_dir"]) / TASKS[1])})
    with pytest.raises(UserFacingError, match=r"targets '(en|de)coder.block.0.layer.0.SelfAttention.[qv]' .* which the pretrained model does not have as a Linear layer: it was made for another architecture"):
        pool.task_vectors(TASKS, pool.load_pretrained())
    weights_only = tmp_path / "weights_only"
    shutil.copytree(Path(lora_experts["experts_dir"]) / TASKS[0], weights_only)
    (weights_only / "adapter_config.json").unlink()
    pool = TextModelPool(lora_experts["pretrained"], experts={TASKS[0]: str(weights_only), TASKS[1]: str(Path(lora_experts["experts_dir"]) / TASKS[1])})
    with pytest.raises(UserFacingError, match="holds LoRA adapter weights .* but no adapter_config.json"):
        pool.task_vectors(TASKS, pool.load_pretrained())


def test_an_adapter_for_another_architecture_through_the_cli_is_one_line_and_keeps_results(lora_experts, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    import peft
    from transformers import AutoModelForSeq2SeqLM

    from tests.conftest import earlier_results
    from tests.test_seq2seq_family import make_tiny_t5

    experts = tmp_path / "experts"
    shutil.copytree(Path(lora_experts["experts_dir"]) / TASKS[1], experts / TASKS[1])
    t5 = peft.get_peft_model(AutoModelForSeq2SeqLM.from_pretrained(make_tiny_t5(tmp_path / "t5")), peft.LoraConfig(r=2, target_modules=["q", "v"]))
    t5.save_pretrained(experts / TASKS[0])
    before = earlier_results(tmp_path / "results")
    pool = {"pretrained": lora_experts["pretrained"], "experts_dir": str(experts)}
    args = ["test", "--config", str(lora_experts["data"]), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml"), *pool_overrides(pool), *quiet_trainer(tmp_path)]
    proc = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "MERGE_DEBUG"})  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "it was made for another architecture" in errors[0] and "truncated" not in errors[0]
    assert {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()} == before


def test_a_gpt2_adapter_on_conv1d_layers_fits_its_own_base(tmp_path):
    """GPT-2's c_attn is a transformers Conv1D, its weight stored (in, out): a matching adapter must not be refused."""
    import peft
    from transformers import GPT2Config, GPT2Model

    from dawe_merge.modelpool.lora import check_adapter_fits

    torch.manual_seed(0)
    base = GPT2Model(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    base.save_pretrained(tmp_path / "gpt2")
    peft.get_peft_model(GPT2Model.from_pretrained(tmp_path / "gpt2"), peft.LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True)).save_pretrained(tmp_path / "adapter")
    check_adapter_fits(GPT2Model.from_pretrained(tmp_path / "gpt2"), tmp_path / "adapter")  # no error
    wider = GPT2Model(GPT2Config(vocab_size=50, n_positions=16, n_embd=24, n_layer=1, n_head=2))
    from dawe_merge.errors import UserFacingError

    with pytest.raises(UserFacingError, match=r"its update of 'h.0.attn.c_attn' is 48×16, the pretrained model's layer is 72×24"):
        check_adapter_fits(wider, tmp_path / "adapter")
