"""Every YAML under configs/ parses and instantiates (LightningCLI run=False)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT

DATA_CONFIGS = {"text": ROOT / "configs/text/benchmark.yaml"}
METHOD_CONFIGS = sorted(p for p in (ROOT / "configs/text").glob("*.yaml") if not p.name.startswith("benchmark"))
TRAINER_CONFIGS = sorted((ROOT / "configs/trainer").glob("*.yaml"))


def _data_for(config: Path) -> Path:
    return DATA_CONFIGS[config.parent.name]


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_method_config_instantiates(config):
    from lightning import LightningDataModule

    from src.methods.base import MergedModelModule

    cli = run_cli_no_run(["--config", str(_data_for(config)), "--config", str(config)])
    assert isinstance(cli.model, MergedModelModule)
    assert isinstance(cli.datamodule, LightningDataModule)
    assert cli.config["seed_everything"] is not None and cli.config["seed_everything"] is not False


@pytest.mark.parametrize("config", TRAINER_CONFIGS, ids=lambda p: p.name)
def test_trainer_config_stacks(config):
    cli = run_cli_no_run(["--config", str(DATA_CONFIGS["text"]), "--config", str(ROOT / "configs/text/task_arithmetic.yaml"), "--trainer", str(config), "--trainer.accelerator", "cpu"])
    assert cli.trainer is not None


def test_reference_schedule_stacks_onto_dawe():
    cli = run_cli_no_run(["--config", str(DATA_CONFIGS["text"]), "--config", str(ROOT / "configs/text/dawe_layer_wise.yaml"), "--config", str(ROOT / "configs/schedules/dawe_reference.yaml")])
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
    from src.cli import cli_main

    return cli_main(args, run=False)


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_print_config_resolves_every_config(config, capsys):
    import yaml

    with pytest.raises(SystemExit) as exit_info:
        run_cli_no_run(["--config", str(_data_for(config)), "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = yaml.safe_load(config.read_text())["model"]["class_path"]
    assert printed["model"]["class_path"] == expected
    assert printed["model"]["init_args"]["modelpool"]["class_path"] == "src.families.text.TextModelPool"


def test_help_works_for_a_config_and_lists_the_family_classes():
    import subprocess
    import sys

    def run(*args: str) -> str:
        out = subprocess.run([sys.executable, "main.py", "test", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    assert "--model CONFIG" in run("--config", str(DATA_CONFIGS["text"]), "--config", str(ROOT / "configs/text/dawe_task_wise.yaml"), "--help")
    method_help = run("--model.help", "DAWE")
    assert "--model.modelpool" in method_help and "src.families.text.TextModelPool" in method_help  # a known ModelPool
    assert "--data.tasks" in run("--data.help", "TextTaskPool")  # the base's options reach the family's help


def test_lora_benchmark_stacks_before_every_method():
    for name in ("task_arithmetic", "dawe_layer_wise", "expert"):
        cli = run_cli_no_run(["--config", str(ROOT / "configs/text/benchmark_lora.yaml"), "--config", str(ROOT / f"configs/text/{name}.yaml")])
        pool = cli.model.modelpool
        assert pool.experts_dir == "experts/text_minilm_lora" and pool.lora.rank == 16 and pool.lora.target_modules == ["query", "value"]
        assert cli.datamodule.benchmark == "text_minilm_lora"


def test_seqcls_benchmark_stacks_before_every_method():
    from src.families.seqcls import SeqClsModelPool

    for name in ("task_arithmetic", "dawe_task_wise", "adamerging_layer_wise", "expert"):
        cli = run_cli_no_run(["--config", str(ROOT / "configs/seqcls/benchmark.yaml"), "--config", str(ROOT / f"configs/text/{name}.yaml")])
        assert isinstance(cli.model.modelpool, SeqClsModelPool) and cli.model.modelpool.experts_dir == "experts/seqcls_minilm"
        assert cli.datamodule.benchmark == "seqcls_minilm" and [t.name for t in cli.datamodule.tasks][0] == "newsgroups"
