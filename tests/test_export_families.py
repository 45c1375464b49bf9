"""Export, load and predict on the CLIP and text-to-text (LoRA experts) families: the merged model read back with plain
`transformers`, and a DAWE folder with `load_dawe`, reproduce the test accuracies exactly."""
from __future__ import annotations

import json

import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import ROOT, run_cli
from tests.test_seq2seq_family import QUIET, t5  # noqa: F401  (fixture)
from tests.test_vision_family import vision  # noqa: F401  (fixture)


def reported(accuracy: float) -> float:
    """An accuracy as the report holds it: torchmetrics computes in float32."""
    return float(torch.tensor(accuracy, dtype=torch.float32))


def _vision_run(subcommand: str, method: str, root, tmp_path, *extra: str):
    common = ["--config", str(root / "benchmark.yaml"), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *QUIET,
              "--trainer.default_root_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")]  # fmt: skip
    return run_cli([subcommand, *common, *extra])


def test_clip_merge_loads_as_a_plain_clip_model_and_dawe_as_a_folder(vision, tmp_path):  # noqa: F811
    from transformers import CLIPImageProcessor, CLIPModel

    from dawe_merge.export import load_dawe

    cli = _vision_run("test", "task_arithmetic", vision, tmp_path, "--export_dir", str(tmp_path / "ta"))
    report = json.loads((tmp_path / "results/tiny_vision/task_arithmetic/report.json").read_text())
    clip, processor = CLIPModel.from_pretrained(tmp_path / "ta").eval(), CLIPImageProcessor.from_pretrained(tmp_path / "ta")
    heads, info = load_file(str(tmp_path / "ta/heads.safetensors")), json.loads((tmp_path / "ta/merge_info.json").read_text())
    for index, task in enumerate(cli.datamodule.task_names):
        correct = total = 0
        for batch in cli.datamodule.test_dataloader()[index]:
            with torch.no_grad():
                pixels = processor(images=batch["image"], return_tensors="pt")["pixel_values"]
                embedding = clip.vision_model(pixel_values=pixels).pooler_output @ clip.visual_projection.weight.T
            logits = info["heads"][task]["logit_scale"] * torch.nn.functional.normalize(embedding, dim=-1) @ heads[f"{task}.weight"].T
            correct, total = correct + int((logits.argmax(-1) == batch["label"]).sum()), total + len(batch["label"])
        assert reported(correct / total) == report[task]["accuracy"]
    # the text tower and projections are θ0's, the vision tower merged
    pretrained = load_file(str(vision / "clip/model.safetensors"))
    exported = load_file(str(tmp_path / "ta/model.safetensors"))
    assert all(torch.equal(exported[k], v) for k, v in pretrained.items() if not k.startswith("vision_model."))
    assert not torch.equal(exported["vision_model.encoder.layers.0.mlp.fc1.weight"], pretrained["vision_model.encoder.layers.0.mlp.fc1.weight"])

    _vision_run("fit", "dawe_task_wise", vision, tmp_path, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--model.init_args.lr", "1e-2")
    cli = _vision_run("test", "dawe_task_wise", vision, tmp_path, "--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt"),
                      "--export_dir", str(tmp_path / "dawe"))  # fmt: skip
    report = json.loads((tmp_path / "results/tiny_vision/dawe_task_wise/report.json").read_text())
    model = load_dawe(tmp_path / "dawe")
    for index, task in enumerate(cli.datamodule.task_names):
        batches = list(cli.datamodule.test_dataloader()[index])
        correct = sum(int((model(b["image"], task=task).argmax(-1) == b["label"]).sum()) for b in batches)
        assert reported(correct / sum(len(b["label"]) for b in batches)) == report[task]["accuracy"]


def test_clip_predict_reads_a_folder_of_images(vision, tmp_path):  # noqa: F811
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((torch.rand(20, 20, 3) * 255).byte().numpy()).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    _vision_run("predict", "task_arithmetic", vision, tmp_path, "--data.init_args.predict_file", str(folder), "--data.init_args.predict_task", "mirrored")
    rows = [json.loads(line) for line in (tmp_path / "results/tiny_vision/task_arithmetic/predictions.jsonl").read_text().splitlines()]
    assert [(r["task"], r["index"]) for r in rows] == [("mirrored", i) for i in range(3)]
    assert all(len(r["probabilities"]) == 10 and r["class"] in ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine") for r in rows)


def _t5_run(subcommand: str, method: str, root, tmp_path, *extra: str):
    return run_cli([subcommand, "--config", str(root / "benchmark.yaml"), "--config", str(ROOT / f"configs/methods/{method}.yaml"), *QUIET,
                    "--trainer.default_root_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"), *extra])  # fmt: skip


def test_seq2seq_lora_merge_loads_as_a_plain_seq2seq_model_and_dawe_keeps_lora_factored(t5, tmp_path):  # noqa: F811
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from dawe_merge.export import load_dawe

    cli = _t5_run("test", "task_arithmetic", t5, tmp_path, "--export_dir", str(tmp_path / "ta"))
    report = json.loads((tmp_path / "results/tiny_t5/task_arithmetic/report.json").read_text())
    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ta").eval(), AutoTokenizer.from_pretrained(tmp_path / "ta")
    assert not (tmp_path / "ta/adapter_config.json").exists(), "LoRA experts arrive merged into dense weights"
    heads = load_file(str(tmp_path / "ta/heads.safetensors"))
    for task in cli.datamodule.task_names:
        split = cli.datamodule.split(task, "test")
        correct = 0
        for start in range(0, len(split), 4):
            tokens = tokenizer(list(split["text"][start : start + 4]), padding=True, truncation=True, max_length=32, return_tensors="pt")
            start_ids = torch.zeros(tokens["input_ids"].shape[0], 1, dtype=torch.long)  # decoder_start_token_id of the tiny T5
            with torch.no_grad():
                logits = model(**tokens, decoder_input_ids=start_ids).logits[:, 0, heads[f"{task}.token_ids"]]
            correct += int((logits.argmax(-1) == torch.tensor(list(split["label"][start : start + 4]))).sum())
        assert reported(correct / len(split)) == report[task]["accuracy"]

    _t5_run("fit", "dawe_task_wise", t5, tmp_path, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--model.init_args.lr", "1e-2")
    cli = _t5_run("test", "dawe_task_wise", t5, tmp_path, "--ckpt_path", str(tmp_path / "runs/checkpoints/last.ckpt"), "--export_dir", str(tmp_path / "dawe"))
    report = json.loads((tmp_path / "results/tiny_t5/dawe_task_wise/report.json").read_text())
    stored = load_file(str(tmp_path / "dawe/task_vectors.safetensors"))
    assert stored and all(k.startswith(("lora_A.", "lora_B.")) for k in stored), "LoRA task vectors stay factored in the folder"
    loaded = load_dawe(tmp_path / "dawe")
    for task in cli.datamodule.task_names:
        split = cli.datamodule.split(task, "test")
        predicted = torch.cat([loaded(list(split["text"][s : s + 4]), task=task).argmax(-1) for s in range(0, len(split), 4)])
        assert (predicted == torch.tensor(list(split["label"]))).float().mean().item() == report[task]["accuracy"]


def test_seq2seq_predict_reads_prompts_from_jsonl(t5, tmp_path):  # noqa: F811
    lines = [{"text": "review: a gem of a film sentiment:", "task": "rotten_tomatoes"}, {"text": "tweet: join me tonight author:", "task": "election_tweets"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    _t5_run("predict", "task_arithmetic", t5, tmp_path, "--data.init_args.predict_file", str(tmp_path / "prompts.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "results/tiny_t5/task_arithmetic/predictions.jsonl").read_text().splitlines()]
    assert [(r["task"], r["index"]) for r in rows] == [("rotten_tomatoes", 0), ("election_tweets", 1)]
    assert rows[0]["class"] in ("good", "bad") and rows[1]["class"] in ("clinton", "trump")
