"""A wrong task or dataset is named, with what is wrong and how to fix it."""
from __future__ import annotations

import datasets
import pytest
import yaml

from dawe_merge.errors import UserFacingError
from dawe_merge.taskpool import DatasetLoadError
from tests.conftest import ROOT, TEXT_POOL, pool_overrides, quiet_trainer, run_cli, run_test_stage, small_data_config


def _saved_task(root, name: str, train: list[int], test: list[int], num_classes: int = 3):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
    split = lambda labels: datasets.Dataset.from_dict({"text": [f"text {i}" for i in range(len(labels))], "label": labels}, features=features)  # noqa: E731
    datasets.DatasetDict({"train": split(train), "test": split(test)}).save_to_disk(root / name)
    return {"name": name, "hub_path": str(root / name), "class_descriptions": [f"class {c}" for c in range(num_classes)]}


def _data_with(root, task: dict):
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"model": {"init_args": {"modelpool": TEXT_POOL}}, "data": {"class_path": "dawe_merge.families.text.TextTaskPool", "init_args": {"benchmark": "tiny", "tasks": [task]}}}))
    return path


def test_more_labels_than_head_classes(tiny_pool, tmp_path):
    task = _saved_task(tmp_path, "three_labels", [0, 1, 2] * 4, [0, 1, 2, 2], num_classes=2)
    with pytest.raises(DatasetLoadError, match="three_labels.*2 classes .*but labels go up to 2"):
        run_test_stage("pretrained", _data_with(tmp_path, task), tiny_pool, tmp_path)


def test_empty_test_split(tiny_pool, tmp_path):
    task = dict(_saved_task(tmp_path, "no_test", [0, 1, 2] * 4, [0, 1]), max_test=0)
    with pytest.raises(DatasetLoadError, match=r"no_test.*test split is empty \(2 examples in the source, cap max_test=0\)"):
        run_test_stage("pretrained", _data_with(tmp_path, task), tiny_pool, tmp_path)


def test_unreadable_dataset_folder(tiny_pool, tmp_path):
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "data.bin").write_bytes(b"\x00not a dataset")
    task = {"name": "garbage", "hub_path": str(tmp_path / "garbage")}
    with pytest.raises(DatasetLoadError, match="garbage.*not a dataset saved with save_to_disk"):
        run_test_stage("pretrained", _data_with(tmp_path, task), tiny_pool, tmp_path)


def test_unknown_task_name_lists_the_known_corpora(tiny_pool, tmp_path):
    data = small_data_config(tmp_path / "data.yaml", tasks=["rotten_tomatoes", "no_such_task"])
    with pytest.raises(UserFacingError, match="unknown corpus 'no_such_task'.*newsgroups.*hub_path"):
        run_cli(["test", "--config", str(data), "--config", str(ROOT / "configs/methods/pretrained.yaml")] + pool_overrides(tiny_pool) + quiet_trainer(tmp_path))
