"""A run killed mid-way and resumed from its checkpoint ends exactly where an uninterrupted run ends."""
from __future__ import annotations

import lightning as L
import pytest
import torch
import yaml

from tests.conftest import ROOT, pool_overrides, quiet_trainer, run_cli


class CrashAtStep(L.Callback):
    """Stands in for a killed process: fails at the start of a given training step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


def _trainer_config(path, every: int, crash_at: int | None = None):
    """Checkpoints after every validation (every `every` steps), optionally a crash."""
    callbacks = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_top_k": -1, "save_last": True}}
    ]
    if crash_at is not None:
        callbacks.append({"class_path": "tests.test_resume.CrashAtStep", "init_args": {"step": crash_at}})
    trainer = {"max_steps": 2 * every, "val_check_interval": every, "check_val_every_n_epoch": None, "limit_val_batches": 1, "callbacks": callbacks}
    path.write_text(yaml.safe_dump({"trainer": trainer}))
    return path


def _trainable(cli) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in cli.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("config", "every", "max_test"),
    [("dawe_task_wise", 2, 12), ("adamerging_layer_wise", 2, 12), ("expert", 2, 8)],
)
def test_resumed_run_equals_uninterrupted_run(config, every, max_test, tiny_pool, tmp_path):
    """The crash comes mid-epoch (3 adaptation batches per epoch, 5 for the expert) and the run spans
    epochs of a shuffled loader, so data position, shuffle state, optimiser and (for the expert)
    dropout must all be restored for the numbers to agree bit for bit."""
    from tests.conftest import small_data_config

    data = small_data_config(tmp_path / "data.yaml", max_test=max_test)
    extra = ["--model.init_args.task", "election_tweets"] if config == "expert" else []
    if config != "expert":
        extra += ["--model.init_args.lr", "0.05"]  # big steps, so a different batch order would show

    def fit(name: str, trainer_yaml, more: list[str] = []):
        root = tmp_path / name
        args = ["fit", "--config", str(data), "--config", str(ROOT / f"configs/methods/{config}.yaml"), "--config", str(trainer_yaml)]
        args += pool_overrides(tiny_pool) + quiet_trainer(root) + extra + more
        args += ["--model.init_args.modelpool.init_args.experts_dir", tiny_pool["experts_dir"]] if config != "expert" else [
            "--model.init_args.modelpool.init_args.experts_dir", str(root / "experts")]
        return run_cli(args)

    whole = fit("whole", _trainer_config(tmp_path / "whole.yaml", every))
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("killed", _trainer_config(tmp_path / "killed.yaml", every, crash_at=every + 1))
    checkpoint = tmp_path / "killed/runs/checkpoints/last.ckpt"
    assert torch.load(checkpoint, weights_only=False)["global_step"] == every
    resumed = fit("killed", _trainer_config(tmp_path / "resumed.yaml", every), ["--ckpt_path", str(checkpoint)])

    assert resumed.trainer.global_step == whole.trainer.global_step == 2 * every
    a, b = _trainable(whole), _trainable(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=f"{name} differs after resuming")
    if config != "expert":
        assert resumed.model.history == whole.model.history, "the resumed curve must include the steps before the crash"
        assert [row["step"] for row in whole.model.history] == [0, every, 2 * every], "the start (step 0), then every monitoring point"
