"""Hypernetwork transfer between primary models, and safe import of the original DAWE code's pickles."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dawe_merge.errors import UserFacingError
from dawe_merge.models.hypernetwork_io import read_hypernetwork
from tests.conftest import ROOT, TASKS, make_tiny_bert, perturbed_copy, pool_overrides, quiet_trainer, run_cli

REFERENCE_NET = ["--model.init_args.hidden_layers", "1", "--model.init_args.standardize_features", "false"]  # the original hypernetwork
STANDARDISED = ["--model.init_args.standardize_features", "true"]  # the configs read raw features
FIT = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1"]


@pytest.fixture(scope="module")
def wider_pool(tmp_path_factory):
    """Another primary model (hidden 48 instead of 32) with its own experts: the transfer target."""
    root = tmp_path_factory.mktemp("wider")
    pretrained = make_tiny_bert(root / "pretrained", seed=5, hidden=48)
    for i, task in enumerate(TASKS):
        perturbed_copy(pretrained, root / "experts" / task, seed=10 + i)
    return {"pretrained": str(pretrained), "experts_dir": str(root / "experts")}


def _dawe(config: str, pool, data_config, tmp_path, extra=()):
    return ["--config", str(data_config), "--config", str(ROOT / f"configs/methods/{config}.yaml"), *pool_overrides(pool), *quiet_trainer(tmp_path), *extra]


def test_task_wise_hypernetwork_transfers_to_another_primary_model(tiny_pool, wider_pool, data_config, tmp_path):
    source = run_cli(["fit", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path / "src"), *FIT])
    export = tmp_path / "src/runs/trainable.pt"
    target = run_cli(["test", *_dawe("dawe_task_wise", wider_pool, data_config, tmp_path / "dst", ["--model.init_args.hypernetwork_init", str(export)])])
    for (name, a), (_, b) in zip(source.model.hypernetwork.state_dict().items(), target.model.hypernetwork.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    assert (tmp_path / "dst/results/tiny/dawe_task_wise/report.json").exists()


def test_layer_wise_hypernetwork_transfers_only_between_matching_tensors(tiny_pool, wider_pool, data_config, tmp_path):
    run_cli(["fit", *_dawe("dawe_layer_wise", tiny_pool, data_config, tmp_path / "src"), *FIT])
    export = ["--model.init_args.hypernetwork_init", str(tmp_path / "src/runs/trainable.pt")]
    # same tensor names (a wider model of the same depth): the (task, tensor) layout corresponds, so it loads
    run_cli(["test", *_dawe("dawe_layer_wise", wider_pool, data_config, tmp_path / "wide", export)])
    deeper = tmp_path / "deeper"
    make_tiny_bert(deeper / "pretrained", layers=3)
    for i, task in enumerate(TASKS):
        perturbed_copy(deeper / "pretrained", deeper / "experts" / task, seed=i)
    pool = {"pretrained": str(deeper / "pretrained"), "experts_dir": str(deeper / "experts")}
    with pytest.raises(UserFacingError, match="outputs .* coefficients, this run needs"):
        run_cli(["test", *_dawe("dawe_layer_wise", pool, data_config, tmp_path / "deep", export)])


def test_wrong_task_order_is_refused(tiny_pool, data_config, tmp_path):
    run_cli(["fit", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path / "src"), *FIT])
    from tests.conftest import small_data_config

    reversed_data = small_data_config(tmp_path / "reversed.yaml", tasks=list(reversed(TASKS)))
    with pytest.raises(UserFacingError, match="tasks .* differ"):
        run_cli(["test", *_dawe("dawe_task_wise", tiny_pool, reversed_data, tmp_path / "dst", ["--model.init_args.hypernetwork_init", str(tmp_path / "src/runs/trainable.pt")])])


def test_reference_pickle_is_imported_safely_and_used(tiny_pool, data_config, tmp_path):
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(384, 384), nn.ReLU(), nn.Linear(384, len(TASKS)))  # the original format
    path = tmp_path / "dict_mapping_step=1000.pt"
    torch.save(reference, path)
    cli = run_cli(["test", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path, [*REFERENCE_NET, "--model.init_args.hypernetwork_init", str(path)])])
    features = torch.randn(3, 384)
    torch.testing.assert_close(cli.model.hypernetwork(features), reference(features))


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload()}, path)
    with pytest.raises(UserFacingError, match="Cannot read .* safely") as caught:
        read_hypernetwork(path)
    message = str(caught.value)
    # one line that names what was refused, and never torch's advice to load the file unsafely
    assert "\n" not in message and "GLOBAL print" in message and "weights_only" not in message and "trust" not in message


def test_reference_with_wrong_size_is_refused(tiny_pool, data_config, tmp_path):
    path = tmp_path / "layer_wise.pt"
    torch.save(nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1264)), path)  # a ResNet-18, CLIP layer-wise file
    with pytest.raises(UserFacingError, match="512-d features"):
        run_cli(["test", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path, ["--model.init_args.hypernetwork_init", str(path)])])


def test_standardisation_statistics_are_saved_and_a_mismatched_run_is_refused(tiny_pool, data_config, tmp_path):
    source = run_cli(["fit", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path / "src", STANDARDISED), *FIT])
    net = source.model.hypernetwork
    assert net.standardize and net.standardizer_fitted
    cached = torch.stack(list(source.model._feature_cache.values()))
    torch.testing.assert_close(net.feature_mean, cached.mean(0))  # statistics of every adaptation input
    last = tmp_path / "src/runs/checkpoints/last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    torch.testing.assert_close(saved["hypernetwork.feature_std"], net.feature_std)
    raw = ["--model.init_args.standardize_features", "false"]
    with pytest.raises(UserFacingError, match="standardize_features=True"):
        run_cli(["test", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path / "ckpt", raw), "--ckpt_path", str(last)])
    export = ["--model.init_args.hypernetwork_init", str(tmp_path / "src/runs/trainable.pt")]
    with pytest.raises(UserFacingError, match="standardised features"):
        run_cli(["test", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path / "init", [*raw, *export])])


def test_raw_feature_hypernetworks_are_refused_by_a_standardising_run(tiny_pool, data_config, tmp_path):
    """A network adapted on raw features must not silently meet standardised ones (its codings would jump)."""
    torch.manual_seed(0)
    reference = tmp_path / "reference.pt"
    torch.save(nn.Sequential(nn.Linear(384, 384), nn.ReLU(), nn.Linear(384, len(TASKS))), reference)
    run_cli(["fit", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path / "raw", REFERENCE_NET), *FIT])
    raw_export = tmp_path / "raw/runs/trainable.pt"
    for path in (reference, raw_export):
        with pytest.raises(UserFacingError, match="adapted on raw features .*standardize_features: false"):
            run_cli(["fit", *_dawe("dawe_task_wise", tiny_pool, data_config, tmp_path / "std", ["--model.init_args.hidden_layers", "1", *STANDARDISED, "--model.init_args.hypernetwork_init", str(path)]), *FIT])


def test_a_folder_or_a_foreign_file_as_hypernetwork_gets_one_line_without_unsafe_advice(tmp_path):
    from dawe_merge.models.hypernetwork_io import HypernetworkLoadError, read_hypernetwork

    with pytest.raises(HypernetworkLoadError, match="is a folder: give the file inside it"):
        read_hypernetwork(tmp_path)
    (tmp_path / "notes.pt").write_text("not a pickle at all\n")
    with pytest.raises(HypernetworkLoadError) as caught:
        read_hypernetwork(tmp_path / "notes.pt")
    assert "\n" not in str(caught.value) and "weights_only=False" not in str(caught.value)
