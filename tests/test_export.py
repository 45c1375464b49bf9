"""Merged models leave the process: static and AdaMerging exports load with plain `transformers` and reproduce the
test accuracies; a DAWE folder runs in a fresh process with no TaskPool; `predict` and `validate` through the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT, TASKS, pool_overrides, quiet_trainer, run_cli


def plain_text_accuracy(folder: Path, texts: list[str], labels: list[int], task: str, batch_size: int = 4) -> float:
    """Accuracy of an exported text encoder read with transformers only: mean pooling, L2, the saved zero-shot head."""
    from transformers import AutoModel, AutoTokenizer

    info = json.loads((folder / "merge_info.json").read_text())
    weight, scale = load_file(str(folder / "heads.safetensors"))[f"{task}.weight"], info["heads"][task]["logit_scale"]
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=32, return_tensors="pt")
            hidden = model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).float()
            embedding = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
            logits = scale * torch.nn.functional.normalize(embedding, dim=-1) @ weight.T
            correct += int((logits.argmax(-1) == torch.tensor(labels[start : start + batch_size])).sum())
    return float(torch.tensor(correct / len(texts), dtype=torch.float32))  # as the report holds it (torchmetrics: float32)


def _run(subcommand: str, method: str, data: Path, pool: dict, tmp_path: Path, *extra: str):
    return run_cli([subcommand, "--config", str(data), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *pool_overrides(pool),
                    *quiet_trainer(tmp_path), *extra])  # fmt: skip


@pytest.mark.parametrize("method", ["task_arithmetic", "ties"])
def test_static_export_loads_with_plain_transformers_and_reproduces_the_test_accuracies(method, tiny_pool, data_config, tmp_path):
    cli = _run("test", method, data_config, tiny_pool, tmp_path, "--export_dir", str(tmp_path / "merged"))
    report = json.loads((tmp_path / "results/tiny" / method / "report.json").read_text())
    folder = tmp_path / "merged"
    for task in TASKS:
        split = cli.datamodule.split(task, "test")
        assert plain_text_accuracy(folder, split["text"], split["label"], task) == report[task]["accuracy"]
    info = json.loads((folder / "merge_info.json").read_text())
    assert all(info["report"][t] == report[t] for t in [*TASKS, "average"]) and info["command"].startswith("python main.py test")
    assert set(info["experts"]) == set(TASKS) and all(len(e["files"]["model.safetensors"]) == 64 for e in info["experts"].values())
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "AutoModel.from_pretrained" in card and f"{100 * report['average']['accuracy']:.2f}" in card
    # the exported weights are θ0 + λ Σ τ (task arithmetic) as computed independently from the files
    if method == "task_arithmetic":
        theta0 = load_file(str(Path(tiny_pool["pretrained"]) / "model.safetensors"))
        experts = [load_file(str(Path(tiny_pool["experts_dir"]) / t / "model.safetensors")) for t in TASKS]
        merged = load_file(str(folder / "model.safetensors"))
        name = "encoder.layer.0.attention.self.query.weight"
        torch.testing.assert_close(merged[name], theta0[name] + 0.3 * sum(e[name] - theta0[name] for e in experts))


def test_export_refuses_what_it_cannot_export_before_any_work(tiny_pool, data_config, tmp_path):
    from dawe_merge.errors import UserFacingError

    with pytest.raises(UserFacingError, match="no merged model to export"):
        _run("test", "individual", data_config, tiny_pool, tmp_path, "--export_dir", str(tmp_path / "out"))
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied/notes.txt").write_text("mine")
    with pytest.raises(UserFacingError, match=r"holds files this project did not write there \(notes.txt\)"):
        _run("test", "task_arithmetic", data_config, tiny_pool, tmp_path, "--export_dir", str(tmp_path / "occupied"))
    assert (tmp_path / "occupied/notes.txt").read_text() == "mine"
    assert not (tmp_path / "results/tiny/task_arithmetic/report.json").exists(), "refused before the evaluation"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_earlier_export_with_the_users_files_added_is_refused_and_left_as_it_was(tiny_pool, data_config, tmp_path):
    from dawe_merge.errors import UserFacingError

    out = tmp_path / "merged"
    _run("test", "task_arithmetic", data_config, tiny_pool, tmp_path, "--export_dir", str(out))
    first = _snapshot(out)
    with pytest.raises(UserFacingError, match="holds an earlier export: give --export_overwrite"):
        _run("test", "ties", data_config, tiny_pool, tmp_path, "--export_dir", str(out))
    assert _snapshot(out) == first and not (tmp_path / "results/tiny/ties/report.json").exists(), "refused before the evaluation"
    _run("test", "ties", data_config, tiny_pool, tmp_path, "--export_dir", str(out), "--export_overwrite", "true")  # only its own files
    assert json.loads((out / "merge_info.json").read_text())["method"] == "ties" and set(_snapshot(out)) == set(first)
    (out / "NOTES.txt").write_text("my notes")
    (out / "eval").mkdir()
    (out / "eval/scores.csv").write_text("task,score\n")
    before = _snapshot(out)
    with pytest.raises(UserFacingError, match=r"did not write there \(NOTES.txt, eval/scores.csv\)"):
        _run("test", "task_arithmetic", data_config, tiny_pool, tmp_path, "--export_dir", str(out), "--export_overwrite", "true")
    assert _snapshot(out) == before


def test_an_export_written_before_inventories_is_named_and_left_as_it_was(tmp_path):
    from dawe_merge.errors import UserFacingError
    from dawe_merge.export.writer import check_export_target

    old = tmp_path / "old_export"
    old.mkdir()
    (old / "merge_info.json").write_text(json.dumps({"method": "ties"}))  # no "files": what was the export's is unknown
    (old / "model.safetensors").write_bytes(b"weights")
    before = _snapshot(old)
    with pytest.raises(UserFacingError, match="written before exports listed their files"):
        check_export_target(old)
    assert _snapshot(old) == before


@pytest.mark.parametrize("place", ["pretrained", "inside pretrained", "holding the experts", "under a file"])
def test_an_export_over_what_the_run_reads_or_under_a_file_is_refused_up_front(place, tiny_pool, data_config, tmp_path):
    from dawe_merge.errors import UserFacingError

    pretrained = Path(tiny_pool["pretrained"])
    (tmp_path / "a_file").write_text("x")
    out = {"pretrained": pretrained, "inside pretrained": pretrained / "export", "holding the experts": Path(tiny_pool["experts_dir"]).parent,
           "under a file": tmp_path / "a_file" / "export"}[place]  # fmt: skip
    watched = {p: _snapshot(p) for p in (pretrained, Path(tiny_pool["experts_dir"]))}
    match = "is a file, not a folder" if place == "under a file" else "which this run reads"
    with pytest.raises(UserFacingError, match=match):
        _run("test", "task_arithmetic", data_config, tiny_pool, tmp_path, "--export_dir", str(out))
    assert {p: _snapshot(p) for p in watched} == watched
    assert not (tmp_path / "results/tiny/task_arithmetic/report.json").exists(), "refused before the evaluation"


def test_an_export_into_a_read_only_folder_is_refused_naming_it(tmp_path):
    """A folder the user cannot write: refused by the up-front check, before any evaluation (root writes everywhere, so
    as root the check runs as the unprivileged user `nobody`)."""
    import os
    import shutil
    import tempfile

    place = Path(tempfile.mkdtemp(prefix="read_only_place-"))  # not under pytest's 0700 folder: `nobody` must reach it
    try:
        place.chmod(0o555)
        code = "import sys; from pathlib import Path; from dawe_merge.export.writer import check_export_target; check_export_target(Path(sys.argv[1]))"
        command = [sys.executable, "-c", code, str(place / "merged")]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: no unprivileged user to try a read-only folder with")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(place)})
        assert proc.returncode != 0
        assert f"--export_dir '{place / 'merged'}' cannot be written ('{place}': Permission denied); choose another folder." in proc.stderr
        assert list(place.iterdir()) == []
    finally:
        place.chmod(0o755)
        shutil.rmtree(place)


def test_adamerging_export_via_python_api_reproduces_its_accuracies(tiny_pool, tmp_path):
    from dawe_merge.families.text import TextModelPool, TextTask, TextTaskPool
    from dawe_merge.methods import AdaMerging

    taskpool = TextTaskPool([TextTask(name=t, max_train=24, max_test=8) for t in TASKS], batch_size=4, adapt_batch_size=4, val_size=4)
    method = AdaMerging(TextModelPool(tiny_pool["pretrained"], tiny_pool["experts_dir"], max_length=32), mode="layer_wise", lr=5e-2)
    method.adapt(taskpool, max_steps=3, accelerator="cpu", enable_progress_bar=False)
    report = taskpool.evaluate(method, accelerator="cpu", enable_progress_bar=False)
    folder = method.export(tmp_path / "ada")
    info = json.loads((folder / "merge_info.json").read_text())
    lambdas = torch.tensor(info["coefficients"]["values"])
    assert lambdas.shape == (2, len(info["coefficients"]["tensors"])) and not torch.allclose(lambdas, torch.full_like(lambdas, 0.3))
    for task in TASKS:
        split = taskpool.split(task, "test")
        assert plain_text_accuracy(folder, split["text"], split["label"], task) == report[task]["accuracy"]


FRESH_PROCESS = """
import json, sys
from dawe_merge.export import load_dawe
folder, inputs = sys.argv[1], json.load(open(sys.argv[2]))
model = load_dawe(folder)
out = {}
for task, (texts, labels) in inputs.items():
    correct, coefficients = 0, []
    for start in range(0, len(texts), 4):
        logits, c = model(texts[start:start + 4], task=task, return_coefficients=True)
        correct += sum(int(p == y) for p, y in zip(logits.argmax(-1).tolist(), labels[start:start + 4]))
        coefficients += c[:, :, 0].tolist()
    out[task] = {"accuracy": correct / len(texts), "coefficients": coefficients}
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["task_wise", "layer_wise"])
def test_dawe_folder_runs_in_a_fresh_process_without_a_taskpool(mode, tiny_pool, data_config, tmp_path):
    method = f"dawe_{mode}"
    features = ["--features.init_args.model", tiny_pool["pretrained"], "--model.init_args.lr", "1e-2"]
    _run("fit", method, data_config, tiny_pool, tmp_path, *features, "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0")
    cli = _run("test", method, data_config, tiny_pool, tmp_path, *features, "--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt"),
               "--export_dir", str(tmp_path / "dawe"))  # fmt: skip
    report = json.loads((tmp_path / "results/tiny" / method / "report.json").read_text())
    inputs = {t: (list(cli.datamodule.split(t, "test")["text"]), list(cli.datamodule.split(t, "test")["label"])) for t in TASKS}
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "dawe"), str(tmp_path / "inputs.json")], cwd=tmp_path,
                          capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    summary = json.loads((tmp_path / "results/tiny" / method / "coefficients.json").read_text())
    for i, task in enumerate(TASKS):
        assert loaded[task]["accuracy"] == report[task]["accuracy"]
        mean = torch.tensor(loaded[task]["coefficients"]).mean(0) if mode == "task_wise" else None
        if mean is not None:
            torch.testing.assert_close(mean, torch.tensor(summary["by_input_task"][i]).float(), atol=1e-5, rtol=1e-5)
    config = json.loads((tmp_path / "dawe/dawe_config.json").read_text())
    assert config["mode"] == mode and [t["name"] for t in config["tasks"]] == TASKS and "experts_dir" not in config["modelpool"]["init_args"]


def test_dawe_bf16_export_halves_the_task_vectors_and_a_wrong_base_model_is_refused(tiny_pool, tmp_path):
    from dawe_merge.errors import UserFacingError
    from dawe_merge.export import load_dawe
    from dawe_merge.families.text import SentenceFeatures, TextModelPool, TextTask, TextTaskPool
    from dawe_merge.methods import DAWE
    from tests.conftest import make_tiny_bert

    taskpool = TextTaskPool([TextTask(name=t, max_train=24, max_test=8) for t in TASKS], batch_size=4, adapt_batch_size=4, val_size=4)
    method = DAWE(TextModelPool(tiny_pool["pretrained"], tiny_pool["experts_dir"], max_length=32), SentenceFeatures(tiny_pool["pretrained"]))
    method.merge(taskpool)  # heads and task order from the TaskPool (un-adapted: the export does not care)
    full, half = method.export(tmp_path / "fp32"), method.export(tmp_path / "bf16", task_vector_dtype="bfloat16")
    size = lambda folder: (folder / "task_vectors.safetensors").stat().st_size  # noqa: E731
    assert 0.49 < size(half) / size(full) < 0.51
    texts = taskpool.split(TASKS[0], "test")["text"][:4]
    exact, rounded = load_dawe(full)(texts, task=TASKS[0]), load_dawe(half)(texts, task=TASKS[0])
    assert rounded.dtype == exact.dtype and torch.allclose(exact, rounded, atol=0.05) and not torch.equal(exact, rounded)
    config = json.loads((full / "dawe_config.json").read_text())
    config["modelpool"]["init_args"]["pretrained"] = str(make_tiny_bert(tmp_path / "other", seed=5))
    (full / "dawe_config.json").write_text(json.dumps(config))
    with pytest.raises(UserFacingError, match="not the one"):
        load_dawe(full)


@pytest.mark.parametrize("damage", ["cut in half", "not safetensors", "hypernetwork of another shape"])
def test_a_damaged_dawe_folder_is_one_line_naming_the_file(damage, tiny_pool, tmp_path):
    from safetensors.torch import save_file

    from dawe_merge.errors import UserFacingError
    from dawe_merge.export import load_dawe
    from dawe_merge.families.text import SentenceFeatures, TextModelPool, TextTask, TextTaskPool
    from dawe_merge.methods import DAWE

    taskpool = TextTaskPool([TextTask(name=t, max_train=24, max_test=8) for t in TASKS], batch_size=4, adapt_batch_size=4, val_size=4)
    method = DAWE(TextModelPool(tiny_pool["pretrained"], tiny_pool["experts_dir"], max_length=32), SentenceFeatures(tiny_pool["pretrained"]))
    method.merge(taskpool)
    folder = method.export(tmp_path / "dawe")
    target = folder / ("hypernetwork.safetensors" if damage.startswith("hypernetwork") else "task_vectors.safetensors")
    if damage == "cut in half":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "not safetensors":
        target.write_text("not tensors at all")
    else:
        save_file({"net.0.weight": torch.zeros(2, 2)}, str(target))
    with pytest.raises(UserFacingError) as caught:
        load_dawe(folder)
    assert f"'{target}'" in str(caught.value) and "export the model again" in str(caught.value) and "\n" not in str(caught.value)


def test_predict_writes_one_row_per_input_with_probabilities_and_dawe_coefficients(tiny_pool, data_config, tmp_path):
    _run("predict", "task_arithmetic", data_config, tiny_pool, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results/tiny/task_arithmetic/predictions.jsonl").read_text().splitlines()]
    assert [(r["task"], r["index"]) for r in rows] == [(t, i) for t in TASKS for i in range(8)]
    assert all(abs(sum(r["probabilities"]) - 1) < 1e-4 and r["prediction"] == max(range(2), key=r["probabilities"].__getitem__) for r in rows)
    cli = _run("test", "task_arithmetic", data_config, tiny_pool, tmp_path)
    for task in TASKS:
        labels = cli.datamodule.split(task, "test")["label"]
        predicted = [r["prediction"] for r in rows if r["task"] == task]
        assert sum(p == y for p, y in zip(predicted, labels)) / len(labels) == cli.model.test_report[task]["accuracy"]
    lines = [{"text": "a wonderful, moving film", "task": TASKS[0]}, {"text": "thank you! join me at my rally"}]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    features = ["--features.init_args.model", tiny_pool["pretrained"]]
    _run("predict", "dawe_task_wise", data_config, tiny_pool, tmp_path, *features, "--data.init_args.predict_file", str(tmp_path / "mine.jsonl"),
         "--data.init_args.predict_task", TASKS[1])  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "results/tiny/dawe_task_wise_start/predictions.jsonl").read_text().splitlines()]
    assert [(r["task"], r["index"]) for r in rows] == [(TASKS[0], 0), (TASKS[1], 1)]
    assert all(len(r["coefficients"]) == 2 and r["class"] is not None for r in rows)
    assert rows[0]["coefficients"] == pytest.approx([0.3, 0.3], abs=1e-6), "no --ckpt_path: the un-adapted start"


def test_validate_evaluates_the_held_out_training_examples(tiny_pool, data_config, tmp_path):
    cli = _run("validate", "task_arithmetic", data_config, tiny_pool, tmp_path)
    written = json.loads((tmp_path / "results/tiny/task_arithmetic/validation.json").read_text())
    _run("test", "task_arithmetic", data_config, tiny_pool, tmp_path, "--export_dir", str(tmp_path / "merged"))
    for task in TASKS:
        split = cli.datamodule.split(task, "val")
        assert len(split) == 4
        assert written["report"][task]["accuracy"] == plain_text_accuracy(tmp_path / "merged", split["text"], split["label"], task)


def test_a_bad_predict_file_is_one_line(tiny_pool, data_config, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine", "task": "rotten_tomatoes"}\n{"txt": "no text key"}\n')
    args = ["predict", "--config", str(data_config), "--config", str(ROOT / "configs/methods/task_arithmetic.yaml"), *pool_overrides(tiny_pool),
            *quiet_trainer(tmp_path), "--data.init_args.predict_file", str(tmp_path / "bad.jsonl")]  # fmt: skip
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error == [f"error: Line 2 of '{tmp_path / 'bad.jsonl'}' has no \"text\" key: each line is {{\"text\": ..., \"task\": ... (optional)}}."]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "is not UTF-8 text (byte 0 is b'\\x89')"),
        (b'{"text": 12345}\n', 'Input 1 of \'{path}\' has "text": 12345; give a non-empty string (the text).'),
        (b'{"text": null}\n', 'Input 1 of \'{path}\' has "text": null; give a non-empty string (the text).'),
        (b'{"text": "ok", "task": 3}\n', 'Input 1 of \'{path}\' has "task": 3; name a task (tasks: a, b).'),
        (b'{"text": "ok", "text_pair": ["x"], "task": "a"}\n', 'Input 1 of \'{path}\' has "text_pair": ["x"]; give a non-empty string'),
    ],
    ids=["binary", "number", "null", "task-number", "pair-list"],
)
def test_predict_file_values_of_the_wrong_kind_are_one_line(content, message, tmp_path):
    from dawe_merge.taskpool.user_inputs import InputFileError, read_user_inputs

    path = tmp_path / "inputs.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as caught:
        read_user_inputs(str(path), "text", ["a", "b"], "a")
    assert message.format(path=path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_predict_file_is_refused_before_any_model_loads(tiny_pool, data_config, tmp_path, monkeypatch):
    from dawe_merge.errors import UserFacingError
    from dawe_merge.modelpool.base import ModelPool

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the predict file was checked")

    monkeypatch.setattr(ModelPool, "pretrained_model", loaded)
    (tmp_path / "bad.jsonl").write_text('{"text": null, "task": "rotten_tomatoes"}\n')
    with pytest.raises(UserFacingError, match='has "text": null'):
        _run("predict", "task_arithmetic", data_config, tiny_pool, tmp_path, "--data.init_args.predict_file", str(tmp_path / "bad.jsonl"))


def test_predict_files_keep_sentence_pairs(tmp_path):
    from dawe_merge.taskpool.user_inputs import InputFileError, read_user_inputs

    lines = [{"text": "a", "text_pair": "b", "task": "mrpc"}, {"text": "c", "text_pair": "d", "task": "mrpc"}, {"text": "e", "task": "sst2"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = read_user_inputs(str(tmp_path / "pairs.jsonl"), "text", ["mrpc", "sst2"], None)
    assert rows == {"mrpc": [{"text": "a", "index": 0, "source": "a", "text_pair": "b"}, {"text": "c", "index": 1, "source": "c", "text_pair": "d"}],
                    "sst2": [{"text": "e", "index": 2, "source": "e"}]}  # fmt: skip
    (tmp_path / "mixed.jsonl").write_text(json.dumps(lines[0]) + "\n" + json.dumps({"text": "x", "task": "mrpc"}) + "\n")
    with pytest.raises(InputFileError, match="on some lines only"):
        read_user_inputs(str(tmp_path / "mixed.jsonl"), "text", ["mrpc", "sst2"], None)
