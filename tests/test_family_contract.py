"""The family contract, proven by a family that lives only in this file.

`digits`: a small MLP over scikit-learn's 8×8 digits. Unlike the text family, each expert trains and
keeps its own linear head (no zero-shot head), tasks have different class counts, and a LoRA variant
gives low-rank task vectors on one tensor only. Every method runs on it through the real CLI with no
change to `dawe_merge/methods/`; that is the point of the contract.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from torch import nn

from dawe_merge.merging.low_rank import LowRankDelta
from dawe_merge.modelpool.base import ModelPool
from dawe_merge.models.features import FeatureExtractor
from dawe_merge.taskpool.base import TaskPool
from dawe_merge.taskpool.tasks import Task, TaskInfo
from tests.conftest import run_cli

HIDDEN = 32
CLASSES = {"digit": tuple(str(d) for d in range(10)), "parity": ("even", "odd")}


# ---- the family --------------------------------------------------------------------------------------
@dataclass
class DigitsTask(Task):
    """Digits, possibly mirrored left-right, labelled by the digit or by its parity."""

    mirrored: bool = False  # flip each image left-right
    target: str = "digit"  # digit (10 classes) or parity (2)


class DigitsTaskPool(TaskPool):
    def __init__(self, tasks: list[DigitsTask], **kwargs) -> None:
        super().__init__(tasks, **kwargs)

    def load_task(self, task: DigitsTask) -> tuple[dict[str, datasets.Dataset], TaskInfo]:
        from sklearn.datasets import load_digits

        images, digits = load_digits(return_X_y=True)
        images = images.reshape(-1, 8, 8)[:, :, ::-1] if task.mirrored else images.reshape(-1, 8, 8)
        pixels = (images.reshape(-1, 64) / 16.0).tolist()
        labels = [int(d) % 2 if task.target == "parity" else int(d) for d in digits]
        rows = lambda part: datasets.Dataset.from_dict({"pixels": [pixels[i] for i in part], "label": [labels[i] for i in part]})  # noqa: E731
        return {"train": rows(range(0, 1400)), "test": rows(range(1400, len(labels)))}, TaskInfo(task.name, CLASSES[task.target])


class DigitsMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)


class DigitsModelPool(ModelPool):
    """Weights in `model.pt`, each expert's own head in `head.pt`, LoRA experts as `lora.pt` factors."""

    def load_pretrained(self) -> DigitsMLP:
        return _load_mlp(Path(self.pretrained) / "model.pt")

    def load_expert(self, task: str) -> DigitsMLP:
        folder = Path(self.expert_reference(task))
        if not (folder / "lora.pt").exists():
            return _load_mlp(folder / "model.pt")
        model = self.load_pretrained()  # a LoRA expert is the pretrained model plus its factors' product
        with torch.no_grad():
            for name, factors in torch.load(folder / "lora.pt", weights_only=True).items():
                model.get_parameter(name).add_(factors["scale"] * factors["B"] @ factors["A"])
        return model

    def expert_update(self, task: str, reference):
        lora = Path(self.expert_reference(task)) / "lora.pt"
        if not lora.exists():
            return super().expert_update(task, reference)
        return {name: LowRankDelta(**factors) for name, factors in torch.load(lora, weights_only=True).items()}

    def prepare_inputs(self, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        return {"pixels": batch["pixels"].float().to(device)}

    def build_head(self, task: TaskInfo, model: nn.Module) -> nn.Module:
        head = nn.Linear(HIDDEN, task.num_classes)
        head.load_state_dict(torch.load(Path(self.expert_reference(task.name)) / "head.pt", weights_only=True))
        return head.requires_grad_(False)

    def expert_head(self, task: TaskInfo, model: nn.Module) -> nn.Module:
        return nn.Linear(HIDDEN, task.num_classes)  # trained with the expert, then saved beside it

    def write_expert(self, task: str, model: nn.Module, head: nn.Module, out: Path) -> None:
        torch.save(model.state_dict(), out / "model.pt")
        torch.save(head.state_dict(), out / "head.pt")


class PixelFeatures(FeatureExtractor):
    """DAWE's view of a digit: its 64 raw pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.name, self.dim = "pixels", 64

    def features(self, batch: dict) -> torch.Tensor:
        return batch["pixels"].float()


def _load_mlp(path: Path) -> DigitsMLP:
    model = DigitsMLP()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model


# ---- fixtures: a benchmark config, a pretrained model, experts fine-tuned through the CLI -------------------
HERE = "tests.test_family_contract"
TASKS = [{"name": "digits", "max_test": 96}, {"name": "mirrored_parity", "mirrored": True, "target": "parity", "max_test": 96}]
QUIET = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--trainer.enable_model_summary", "false"]


def _benchmark(root: Path, experts: Path) -> Path:
    config = {
        "seed_everything": 0,
        "data": {"class_path": f"{HERE}.DigitsTaskPool", "init_args": {"benchmark": "digits", "batch_size": 32, "adapt_batch_size": 16, "val_size": 100, "tasks": TASKS}},
        "model": {"init_args": {"modelpool": {"class_path": f"{HERE}.DigitsModelPool", "init_args": {"pretrained": str(root / "pretrained"), "experts_dir": str(experts)}}}},
    }
    path = root / f"benchmark_{experts.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _method(root: Path, name: str, class_path: str, **init_args) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"model": {"class_path": class_path, "init_args": {"name": name, **init_args}}}))
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    torch.manual_seed(0)
    (root / "pretrained").mkdir()
    torch.save(DigitsMLP().state_dict(), root / "pretrained/model.pt")
    benchmark = _benchmark(root, root / "experts")
    expert = _method(root, "expert", "dawe_merge.methods.ExpertFineTuning", task="digits", lr=1e-2, warmup_steps=1)
    for task in ("digits", "mirrored_parity"):
        run_cli(["fit", "--config", str(benchmark), "--config", str(expert), "--model.init_args.task", task, "--trainer.max_epochs", "3",
                 "--trainer.default_root_dir", str(root / "runs" / task), "--results_dir", str(root / "results"), *QUIET])  # fmt: skip
    # LoRA experts: the best rank-4 approximation of each expert's update of the first layer only, same heads
    for task in ("digits", "mirrored_parity"):
        out = root / "lora_experts" / task
        out.mkdir(parents=True)
        delta = torch.load(root / "experts" / task / "model.pt")["layers.0.weight"] - torch.load(root / "pretrained/model.pt")["layers.0.weight"]
        U, S, Vh = torch.linalg.svd(delta, full_matrices=False)
        torch.save({"layers.0.weight": {"A": Vh[:4].contiguous(), "B": (U[:, :4] * S[:4]).contiguous() / 2.0, "scale": 2.0}}, out / "lora.pt")
        (out / "head.pt").write_bytes((root / "experts" / task / "head.pt").read_bytes())
    return root


def _run(digits: Path, stage: str, method: Path, experts: str = "experts", extra: tuple = ()) -> dict:
    results = digits / f"results_{experts}"
    run_cli([stage, "--config", str(_benchmark(digits, digits / experts)), "--config", str(method), "--results_dir", str(results),
             "--trainer.default_root_dir", str(digits / "runs" / experts / method.stem), *QUIET, *extra])  # fmt: skip
    report = results / "digits" / method.stem / "report.json"
    return json.loads(report.read_text()) if stage == "test" else {}


def _last_checkpoint(run: Path) -> Path:
    return max(run.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def _accuracy(model: nn.Module, heads: dict[str, nn.Module], pool: DigitsTaskPool) -> dict[str, float]:
    """Independent evaluation: the whole test split through `model` and each expert's head."""
    out = {}
    for task in pool.task_names:
        test = pool.split(task, "test")
        logits = heads[task](model(torch.tensor(list(test["pixels"])).float()))
        out[task] = float((logits.argmax(-1) == torch.tensor(list(test["label"]))).float().mean())
    return out


# ---- the tests -----------------------------------------------------------------------------------------
def test_experts_train_their_own_heads_through_the_cli(digits):
    for task, classes in (("digits", 10), ("mirrored_parity", 2)):
        head = torch.load(digits / "experts" / task / "head.pt")
        assert head["weight"].shape == (classes, HIDDEN)
        assert json.loads((digits / "experts" / task / "expert_info.json").read_text())["val_accuracy"] > 0.8
    individual = _run(digits, "test", _method(digits, "individual", "dawe_merge.methods.Individual"))
    pretrained = _run(digits, "test", _method(digits, "pretrained", "dawe_merge.methods.Pretrained"))
    assert individual["average"]["accuracy"] > 0.85
    assert individual["average"]["accuracy"] > pretrained["average"]["accuracy"] + 0.2


def test_task_arithmetic_matches_a_hand_merged_model(digits):
    report = _run(digits, "test", _method(digits, "task_arithmetic", "dawe_merge.methods.TaskArithmetic", scaling_factor=0.5))
    pool = DigitsTaskPool([DigitsTask(**t) for t in TASKS])
    theta0 = torch.load(digits / "pretrained/model.pt")
    merged = {k: v + 0.5 * sum(torch.load(digits / "experts" / t / "model.pt")[k] - v for t in pool.task_names) for k, v in theta0.items()}
    model = DigitsMLP()
    model.load_state_dict(merged)
    heads = {t: DigitsModelPool(str(digits / "pretrained"), str(digits / "experts")).build_head(pool.task_info(t), model) for t in pool.task_names}
    with torch.no_grad():
        expected = _accuracy(model, heads, pool)
    for task, accuracy in expected.items():
        assert report[task]["accuracy"] == pytest.approx(accuracy)


def test_ties_average_and_adaptive_methods_run_end_to_end(digits):
    fit = ("--trainer.max_steps", "6", "--trainer.val_check_interval", "3", "--trainer.check_val_every_n_epoch", "null", "--trainer.limit_val_batches", "1")
    # normalized accuracy is relative to the individual experts' report: written here, because pytest-xdist may run the
    # test that also writes it on another worker, with its own copy of the module's fixture
    _run(digits, "test", _method(digits, "individual", "dawe_merge.methods.Individual"))
    for name, class_path in (("ties", "dawe_merge.methods.TiesMerging"), ("simple_average", "dawe_merge.methods.SimpleAverage")):
        report = _run(digits, "test", _method(digits, name, class_path))
        assert set(report) >= {"digits", "mirrored_parity", "average"}
    methods = {
        "adamerging_task": ("dawe_merge.methods.AdaMerging", {"mode": "task_wise", "lr": 1e-2}),
        "adamerging_layer": ("dawe_merge.methods.AdaMerging", {"mode": "layer_wise", "lr": 1e-2}),
        "dawe_task": ("dawe_merge.methods.DAWE", {"mode": "task_wise", "hidden_layers": 0, "standardize_features": True, "lr": 1e-3}),
        "dawe_layer": ("dawe_merge.methods.DAWE", {"mode": "layer_wise", "hidden_layers": 0, "standardize_features": True, "lr": 1e-3}),
    }
    for name, (class_path, args) in methods.items():
        if name.startswith("dawe"):
            args = {**args, "feature_extractor": {"class_path": f"{HERE}.PixelFeatures"}}
        method = _method(digits, name, class_path, **args)
        _run(digits, "fit", method, extra=fit)
        ckpt = _last_checkpoint(digits / "runs/experts" / name)
        report = _run(digits, "test", method, extra=("--ckpt_path", str(ckpt)))
        assert 0.0 <= report["average"]["accuracy"] <= 1.0 and report["normalized_accuracy"] is not None
        saved = torch.load(ckpt, weights_only=True)["merge_metadata"]
        # layer-wise: every parameter of the MLP changed, so four merged tensors
        assert saved["num_coefficients"] == 2 * (4 if "layer" in name else 1)


def test_lora_task_vectors_stay_factored_and_touch_one_tensor(digits):
    method = _method(digits, "dawe_lora", "dawe_merge.methods.DAWE", mode="layer_wise", hidden_layers=0, standardize_features=True,
                     lr=1e-3, feature_extractor={"class_path": f"{HERE}.PixelFeatures"})  # fmt: skip
    _run(digits, "fit", method, "lora_experts", ("--trainer.max_steps", "3", "--trainer.limit_val_batches", "0"))
    last = _last_checkpoint(digits / "runs/lora_experts/dawe_lora")
    cli = run_cli(["test", "--config", str(_benchmark(digits, digits / "lora_experts")), "--config", str(method), "--ckpt_path", str(last),
                   "--results_dir", str(digits / "results_lora"), *QUIET])  # fmt: skip
    merger = cli.model.merger
    assert merger.names == ["layers.0.weight"] and merger._factored == {"layers.0.weight"}
    assert not any(name.startswith("stack__") for name, _ in merger.named_buffers())  # no dense copy of the update
    ta = _run(digits, "test", _method(digits, "task_arithmetic_lora", "dawe_merge.methods.TaskArithmetic"), "lora_experts")
    assert ta["average"]["accuracy"] > 0.0

