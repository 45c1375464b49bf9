"""`export`: a merge written without an evaluation run, with its recipe; the recipe makes the same folder again from
another working folder; the card is a hub model card; a failed push keeps the folder; the card's snippet reproduces
`predict` on inputs longer than the tokens kept."""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli

WEIGHTS = (".safetensors", ".json", ".txt")  # what must come out bit-identical (the card and merge_info record times and commands)


def _args(verb: str, method: str, data: Path, pool: dict, tmp_path: Path, *extra: str) -> list[str]:
    return [verb, "--config", str(data), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *pool_overrides(pool), *quiet_trainer(tmp_path),
            *extra]  # fmt: skip


def _weights(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in WEIGHTS and p.name != "merge_info.json"}


def _without_times(info: dict) -> dict:
    return {k: v for k, v in info.items() if k not in ("created", "command")}


def _reexport(recipe: Path, out: Path, elsewhere: Path, monkeypatch) -> None:
    """`export --config recipe.yaml` from another working folder than the one the recipe was written in."""
    elsewhere.mkdir(exist_ok=True)
    monkeypatch.chdir(elsewhere)
    run_cli(["export", "--config", str(recipe), "--export_dir", str(out)])


def test_export_writes_a_static_merge_without_evaluating_and_its_recipe_makes_it_again(tiny_pool, data_config, tmp_path, monkeypatch):
    first = tmp_path / "merged"
    run_cli(_args("export", "task_arithmetic", data_config, tiny_pool, tmp_path, "--export_dir", str(first)))
    assert not (tmp_path / "results").exists(), "export evaluates nothing and writes no report"
    info = json.loads((first / "merge_info.json").read_text())
    assert info["report"] is None and info["recipe"] == "recipe.yaml" and info["preprocessing"]["max_length"] == 32
    assert {"dawe-merge", "torch", "lightning", "transformers", "peft"} <= set(info["environment"])
    recipe = yaml.safe_load((first / "recipe.yaml").read_text())
    assert recipe["model"]["class_path"].startswith("dawe_merge.") and recipe["seed_everything"] == 0
    assert recipe["model"]["init_args"]["modelpool"]["init_args"]["experts_dir"] == tiny_pool["experts_dir"]
    card = ModelCard.load(first / "README.md")
    assert card.data.library_name == "transformers" and card.data.base_model is None, "a local θ0 is no hub id: no base_model"
    assert {"merge", "task_arithmetic"} <= set(card.data.tags) and card.data.merged_tasks == TASKS
    assert "merge-cli export --config recipe.yaml" in card.text and "No evaluation was run" in card.text
    for path in [*first.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path

    again = tmp_path / "again"
    _reexport(first / "recipe.yaml", again, tmp_path / "elsewhere", monkeypatch)
    assert _weights(again) == _weights(first) and set(_weights(first)) >= {"model.safetensors", "heads.safetensors", "config.json"}
    assert _without_times(json.loads((again / "merge_info.json").read_text())) == _without_times(info)

    from dawe_merge.errors import UserFacingError

    renamed = tmp_path / "renamed.yaml"  # a recipe naming a class renamed since: one line naming the key
    renamed.write_text((first / "recipe.yaml").read_text().replace("dawe_merge.methods.TaskArithmetic", "dawe_merge.methods.RenamedArithmetic"))
    with pytest.raises(UserFacingError, match=r"^model.class_path: 'dawe_merge.methods.RenamedArithmetic' does not exist"):
        run_cli(["export", "--config", str(renamed), "--export_dir", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


def test_export_of_dawe_from_its_checkpoint_and_from_a_fit_recipe_is_bit_identical(tiny_pool, data_config, tmp_path, monkeypatch):
    from dawe_merge.errors import UserFacingError

    features = ["--features.init_args.model", tiny_pool["pretrained"], "--model.init_args.lr", "1e-2"]
    with pytest.raises(UserFacingError, match="is adapted by `fit`: give --ckpt_path"):
        run_cli(_args("export", "dawe_task_wise", data_config, tiny_pool, tmp_path, *features, "--export_dir", str(tmp_path / "start")))
    fitted = tmp_path / "fitted"
    run_cli(_args("fit", "dawe_task_wise", data_config, tiny_pool, tmp_path, *features, "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0",
                  "--export_dir", str(fitted)))  # fmt: skip
    last = tmp_path / "runs/checkpoints/last.ckpt"
    assert yaml.safe_load((fitted / "recipe.yaml").read_text())["ckpt_path"] == str(last.resolve())
    exported = tmp_path / "exported"
    run_cli(_args("export", "dawe_task_wise", data_config, tiny_pool, tmp_path, *features, "--ckpt_path", str(last), "--export_dir", str(exported)))
    assert _weights(exported) == _weights(fitted) and {"task_vectors.safetensors", "hypernetwork.safetensors", "dawe_config.json"} <= set(_weights(fitted))
    assert ModelCard.load(exported / "README.md").data.library_name == "dawe-merge"
    again = tmp_path / "again"
    _reexport(exported / "recipe.yaml", again, tmp_path / "elsewhere", monkeypatch)
    assert _weights(again) == _weights(exported)
    hypernetwork = torch.load(last, weights_only=True)["state_dict"]
    assert any(not torch.equal(v, torch.zeros_like(v)) for v in hypernetwork.values()), "the checkpoint holds a trained hypernetwork"


def test_a_push_that_cannot_reach_the_hub_is_one_line_exit_2_and_keeps_the_folder(tiny_pool, data_config, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: the hub out of reach, answered at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "merged"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_TOKEN="hf_fake_token_for_the_test")
    args = _args("export", "task_arithmetic", data_config, tiny_pool, tmp_path, "--export_dir", str(out), "--export_push_to_hub", "someone/merged")
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"written to '{out}'" in errors[0] and "'someone/merged' failed" in errors[0]
    assert f"hf upload someone/merged {out}" in errors[0] and "Traceback" not in done.stderr
    assert (out / "model.safetensors").is_file() and json.loads((out / "merge_info.json").read_text())["method"] == "task_arithmetic"


def test_the_cards_snippet_reproduces_predict_on_inputs_longer_than_the_tokens_kept(tiny_pool, data_config, tmp_path):
    long_text = " ".join(["a wonderful moving film with a great cast"] * 12)  # far more than the 8 tokens kept
    lines = [{"text": long_text + " but the end drags", "task": TASKS[1]}, {"text": "thank you, join me", "task": TASKS[0]},
             {"text": long_text, "task": TASKS[1]}]  # fmt: skip
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    short = ["--model.init_args.modelpool.init_args.max_length", "8"]
    run_cli(_args("predict", "task_arithmetic", data_config, tiny_pool, tmp_path, *short, "--data.init_args.predict_file", str(tmp_path / "mine.jsonl")))
    rows = [json.loads(line) for line in (tmp_path / "results/tiny/task_arithmetic/predictions.jsonl").read_text().splitlines()]
    assert [(r["index"], r["task"], r["text"]) for r in rows] == [(i, line["task"], line["text"]) for i, line in enumerate(lines)], "the file's order"
    run_cli(_args("export", "task_arithmetic", data_config, tiny_pool, tmp_path, *short, "--export_dir", str(tmp_path / "merged")))
    snippet = re.search(r"## Load it\n\n```python\n(.*?)```", (tmp_path / "merged/README.md").read_text(), re.S).group(1)
    assert "max_length=8" in snippet
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tmp_path / "merged")  # the tokens kept, where transformers reads them
    assert saved.model_max_length == 8 and len(saved(long_text, truncation=True)["input_ids"]) == 8
    for row in rows:
        code = snippet.replace('"<task>"', repr(row["task"])).replace('["a text"]', repr([row["text"]]))
        scope: dict = {}
        exec(code, scope)  # the card's own code, as a user would paste it
        torch.testing.assert_close(scope["logits"].softmax(-1)[0], torch.tensor(row["probabilities"]), atol=2e-6, rtol=0)


def test_export_with_best_validation_selection_writes_the_state_test_evaluates(tiny_pool, data_config, tmp_path):
    monitored = ["--model.init_args.lr", "5e-2", "--trainer.max_steps", "3", "--trainer.val_check_interval", "1", "--trainer.limit_val_batches", "1"]
    run_cli(_args("fit", "adamerging_task_wise", data_config, tiny_pool, tmp_path, *monitored))
    chosen = ["--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt"), "--model.init_args.selection", "best_validation"]
    cli = run_cli(_args("test", "adamerging_task_wise", data_config, tiny_pool, tmp_path, *chosen, "--export_dir", str(tmp_path / "tested")))
    run_cli(_args("export", "adamerging_task_wise", data_config, tiny_pool, tmp_path, *chosen, "--export_dir", str(tmp_path / "exported")))
    assert _weights(tmp_path / "exported") == _weights(tmp_path / "tested")
    best = cli.model.best_validation
    learned = json.loads((tmp_path / "exported/merge_info.json").read_text())["coefficients"]
    assert learned["values"] == [[round(float(v), 6)] for v in best["state"]["lambdas"]], "the selected state's λ, not the last"
