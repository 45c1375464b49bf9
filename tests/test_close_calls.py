"""Close calls under bf16: which rows count as one, and that they are decided again in fp32 (and only they)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dawe_merge.errors import ConfigError
from dawe_merge.methods import CloseCallThreshold
from dawe_merge.methods.base import MergedModelModule
from dawe_merge.metrics.close_calls import ULP_EDGES, CloseCallCount, margin_in_ulps, select_rows
from dawe_merge.metrics.task_metrics import ClassAnswers


def test_the_margin_is_counted_in_spacings_of_bf16_at_the_top_logits():
    logits = torch.tensor([[8.0, 8.0625, 1.0], [3.0, -3.0, 3.0], [0.0, 0.0, -1.0], [-40.0, -20.0, -30.0]], dtype=torch.bfloat16)
    # bf16 keeps 8 significant bits: its spacing is 2^-7 · 2^floor(log2 |x|) (1/16 at 8, 1/64 at 3, 1/8 at 20)
    expected = torch.tensor([0.0625 / (1 / 16), 0.0, 0.0, 10.0 / (1 / 8)])
    assert torch.equal(margin_in_ulps(logits), expected)


def test_fp32_logits_answers_and_numbers_have_no_close_calls():
    assert margin_in_ulps(torch.zeros(2, 3)) is None
    assert margin_in_ulps(torch.zeros(2, dtype=torch.bfloat16)) is None  # a regression head's numbers
    assert margin_in_ulps(ClassAnswers(torch.zeros(2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.bfloat16))) is None


def test_select_rows_indexes_per_example_values_and_keeps_options():
    batch = {"input_ids": torch.arange(12).view(4, 3), "text": ["a", "b", "c", "d"], "index": torch.tensor([7, 8, 9, 10]), "max_new_tokens": 5}
    picked = select_rows(batch, torch.tensor([1, 3]))
    assert picked["input_ids"].tolist() == [[3, 4, 5], [9, 10, 11]]
    assert picked["text"] == ["b", "d"] and picked["index"].tolist() == [8, 10] and picked["max_new_tokens"] == 5


def test_close_call_counts_fall_in_their_margin_buckets():
    counter = CloseCallCount()
    counter.update(torch.tensor([0.0, 1.0, 3.0, 100.0]), torch.tensor([True, True, False, False]), torch.tensor([True, False, False, False]))
    counts = counter.compute()
    buckets = len(ULP_EDGES) + 1
    assert counts["inputs"] == [1, 1, 0, 1, 0, 0, 0, 0, 1] and len(counts["inputs"]) == buckets  # ≤0, ≤1, ≤2, ≤4, ..., >64
    assert counts["rechecked"] == [1, 1] + [0] * (buckets - 2)
    assert counts["changed"] == [1] + [0] * (buckets - 1)


class _Inputs:
    """A pool whose inputs are the batch's own vectors (the head reads them as logits)."""

    def evaluation_inputs(self, batch, device):
        return {"x": batch["x"].to(device)}

    prepare_inputs = evaluation_inputs


class _Identity(MergedModelModule):
    def embed(self, inputs, task, batch):
        self.seen.append(len(batch["x"]))
        return inputs["x"]


def _identity_module(ulps: float, cls: type = _Identity) -> _Identity:
    module = cls(_Inputs())
    module.close_call_ulps, module.seen = ulps, []
    module.heads = nn.ModuleDict({"t": nn.Linear(2, 2, bias=False)})
    nn.init.eye_(module.heads["t"].weight)
    module.close_calls = nn.ModuleDict({"t": CloseCallCount()})
    return module


def test_a_bf16_tie_is_decided_as_fp32_decides_it_and_only_close_rows_run_again():
    batch = {"x": torch.tensor([[1.0, 1.001], [1.0, 2.0], [0.5, 0.25]])}  # bf16 rounds 1.001 to 1: a tie, argmax 0
    fp32 = _identity_module(4.0).task_logits(batch, "t", evaluation=True)
    assert fp32.argmax(1).tolist() == [1, 1, 0]
    for ulps, decisions in ((-1.0, [0, 1, 0]), (4.0, [1, 1, 0])):  # -1: nothing again, bf16's own decisions
        module = _identity_module(ulps)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = module.task_logits(batch, "t", evaluation=True)
        assert logits.argmax(1).tolist() == decisions
        if ulps > 0:
            assert module.seen == [3, 1] and logits.dtype == torch.float32  # the tied row alone, again, in fp32
            assert torch.equal(logits[0], fp32[0])
            counts = module.close_calls["t"].compute()
            assert sum(counts["inputs"]) == 3 and sum(counts["rechecked"]) == 1 and counts["changed"][0] == 1
        else:
            assert module.seen == [3]


def test_the_threshold_callback_sets_the_method_and_refuses_nan():
    module = _identity_module(16.0)
    CloseCallThreshold(-1.0).setup(None, module, "test")
    assert module.close_call_ulps == -1.0
    with pytest.raises(ConfigError, match="ulps must be a number"):
        CloseCallThreshold(float("nan"))


class _BatchCentred(_Identity):
    """Outputs that depend on the whole batch (as a merge per batch does): each row minus the batch mean."""

    merges_per_batch_at_evaluation = True

    def embed(self, inputs, task, batch):
        self.seen.append(len(batch["x"]))
        return inputs["x"] - inputs["x"].mean(0)


def test_a_merge_per_batch_decides_its_close_calls_with_the_whole_batch():
    batch = {"x": torch.tensor([[1.0, 1.001], [0.0, 4.0], [4.0, 0.0]])}  # centred: row 0 stays a bf16 tie
    fp32 = _identity_module(4.0, _BatchCentred).task_logits(batch, "t", evaluation=True)
    module = _identity_module(4.0, _BatchCentred)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = module.task_logits(batch, "t", evaluation=True)
    assert module.seen == [3, 3] and torch.equal(logits[0], fp32[0])  # row 0 again, inside its whole batch
    assert logits.argmax(1).tolist() == fp32.argmax(1).tolist() == [1, 1, 0]


def test_non_finite_margins_are_asked_again_and_bf16_weights_are_not():
    module = _identity_module(4.0)
    batch = {"x": torch.tensor([[float("nan"), 1.0], [1.0, 2.0]])}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        module.task_logits(batch, "t", evaluation=True)
    assert module.seen == [2, 1]  # the NaN row again
    module = _identity_module(4.0).to(torch.bfloat16)  # bf16 weights, no autocast: there is no fp32 to ask
    logits = module.task_logits({"x": torch.tensor([[1.0, 1.001]], dtype=torch.bfloat16)}, "t", evaluation=True)
    assert module.seen == [1] and logits.dtype == torch.bfloat16


def test_the_committed_calibration_table_is_what_the_script_prints_from_the_committed_counts(capsys):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("close_calls_script", root / "benchmarks/close_calls.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    names = ["text_minilm", "text_minilm_lora", "seqcls_minilm", "vision_small", "t5_small"]
    script.summary([str(root / f"results/{n}_close_calls") for n in names])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    committed = [line for line in (root / "results/close_calls/README.md").read_text().splitlines() if line.startswith("|")]
    assert printed == committed and len(printed) == 2 + 5 * 6
