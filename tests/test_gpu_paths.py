"""The GPU-speed paths, checked on the CPU: the stacked-inputs Linear and its cost rule, the stacks cast once under
autocast, CUDA-graph replay (its padding and slicing), and that every benchmark model's forward can be captured."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import dawe_merge.per_sample.layers as per_sample_layers
from dawe_merge.per_sample import cuda_graphs
from dawe_merge.per_sample.linear import FLOPS_PER_BYTE, device_balance, stacked_inputs_cheaper, stacked_inputs_linear
from dawe_merge.per_sample.merged_forward import TaskVectorMerger
from tests.test_merged_forward import T, _reference_per_sample, _tiny_text_model, _VisionTower

ROOT = Path(__file__).resolve().parents[1]


def test_stacked_inputs_linear_equals_a_float64_sum_over_samples_and_tasks():
    torch.manual_seed(0)
    batch, tokens, tasks, d_in, d_out = 3, 5, 4, 7, 6
    flat, stack = torch.randn(batch, tokens, d_in), torch.randn(tasks + 1, d_out, d_in)
    extended = torch.cat([torch.rand(batch, tasks), torch.ones(batch, 1)], 1)
    expected = torch.zeros(batch, tokens, d_out, dtype=torch.float64)
    for b in range(batch):  # y_b = x_b (θ0 + Σ_t c_bt τ_t)ᵀ, in float64, one sample and one task at a time
        weight = sum(extended[b, k].double() * stack[k].double() for k in range(tasks + 1))
        expected[b] = flat[b].double() @ weight.T
    torch.testing.assert_close(stacked_inputs_linear(flat, stack, extended).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", ["stacked", "build"])
@pytest.mark.parametrize("model_kind", ["text", "vision"])
def test_per_sample_merge_is_exact_on_either_linear_path(path, model_kind, monkeypatch):
    """Whichever path the rule picks, every sample runs under its own merged weights (the reference loop agrees)."""
    asked = []
    monkeypatch.setattr(per_sample_layers, "stacked_inputs_cheaper", lambda *args: asked.append(args) or path == "stacked")
    if model_kind == "text":
        model, tvs, inputs = _tiny_text_model()
    else:
        torch.manual_seed(1)
        model = _VisionTower().eval()
        tvs = {n: 0.1 * torch.randn(T, *p.shape) for n, p in model.named_parameters()}
        inputs = {"pixel_values": torch.randn(4, 3, 16, 16)}
    merger = TaskVectorMerger(model, tvs)
    batch = next(iter(inputs.values())).shape[0]
    coefficients = torch.rand(batch, T, merger.num_layers)
    with torch.no_grad():
        torch.testing.assert_close(merger(inputs, coefficients), _reference_per_sample(model, tvs, inputs, coefficients), atol=1e-5, rtol=1e-5)
    out = merger(inputs, coefficients.requires_grad_(True))  # and gradients reach the coefficients through it
    out.sum().backward()
    assert coefficients.grad is not None and coefficients.grad.abs().sum() > 0


def test_the_rule_stacks_short_inputs_and_builds_for_long_ones():
    """A one-token input never pays for B weight copies; a 128-token one never pays (T+1)× the products."""
    cpu, fp32 = torch.device("cpu"), torch.float32
    for d_in, d_out in [(768, 768), (768, 3072), (384, 1536)]:
        for balance in FLOPS_PER_BYTE.values():
            assert stacked_inputs_cheaper(16, 1, 8, d_in, d_out, 4, balance)
            assert not stacked_inputs_cheaper(16, 128, 8, d_in, d_out, 4, balance)
    # the crossover moves to longer inputs where arithmetic is cheaper per byte: tensor cores stack 16 tokens, a CPU does not
    assert stacked_inputs_cheaper(16, 16, 8, 768, 768, 2, FLOPS_PER_BYTE["cuda_tensor_cores"])
    assert not stacked_inputs_cheaper(16, 16, 8, 768, 768, 4, FLOPS_PER_BYTE["cpu"])
    assert device_balance(cpu, fp32) == FLOPS_PER_BYTE["cpu"]
    assert device_balance(torch.device("cuda"), torch.bfloat16) == FLOPS_PER_BYTE["cuda_tensor_cores"]


def test_stacks_are_cast_once_under_autocast_with_the_same_outputs(monkeypatch):
    """bf16 per-sample merging reads stacks cast once and kept, not cast in every forward, with identical outputs."""
    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    coefficients = torch.rand(5, T, merger.num_layers)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        kept = merger(inputs, coefficients)
        copies = merger._autocast_copies[torch.bfloat16]
        assert copies and all(t.dtype == torch.bfloat16 for t in copies.values())
        again = merger(inputs, coefficients)
        assert merger._autocast_copies[torch.bfloat16] is copies  # cast once
        monkeypatch.setattr(TaskVectorMerger, "_stacks_under_autocast", lambda self: {})
        cast_each_time = merger(inputs, coefficients)  # autocast casts the fp32 stacks inside every product
    assert torch.equal(kept, cast_each_time) and torch.equal(kept, again)
    monkeypatch.undo()
    with torch.no_grad():
        merger(inputs, coefficients)  # no autocast: no copies made
    merger.to(torch.float32)
    assert merger._autocast_copies == {}  # a move drops them (they would be on the old device)


class _EagerGraph:
    """Stands in for torch.cuda.CUDAGraph on a CPU: replay re-runs the function on the captured buffers."""

    def __init__(self, fn, batched, shared) -> None:
        self.fn, self.batched, self.shared, self.outputs = fn, batched, shared, None

    def replay(self) -> None:
        out = self.fn(self.batched, self.shared)
        for mine, new in zip(self.outputs.values(), out.values()):
            mine.copy_(new)


def test_graph_replay_pads_a_smaller_batch_and_returns_its_rows_only():
    """A split's last batch is padded to the captured size with its last row; outputs are the real rows, copied."""

    def fn(batched, shared):
        return {"y": batched["x"] * shared["scale"] + batched["x"].sum(1, keepdim=True)}

    full = {"x": torch.randn(4, 3)}
    shared = {"scale": torch.tensor(2.0)}
    static_batched, static_shared = {k: v.clone() for k, v in full.items()}, {k: v.clone() for k, v in shared.items()}
    graph = _EagerGraph(fn, static_batched, static_shared)
    graph.outputs = fn(static_batched, static_shared)
    captured = cuda_graphs._Captured(graph, static_batched, static_shared, graph.outputs)
    small = {"x": torch.randn(2, 3)}
    out = captured.run(small, {"scale": torch.tensor(3.0)})
    torch.testing.assert_close(out["y"], fn(small, {"scale": torch.tensor(3.0)})["y"])
    assert torch.equal(static_batched["x"][2:], small["x"][-1:].expand(2, 3))  # padding repeats the last row
    assert out["y"].data_ptr() != graph.outputs["y"].data_ptr()  # a copy: the next replay cannot overwrite it


def test_graphed_call_runs_eagerly_off_cuda_and_with_gradients():
    calls = []
    graphed = cuda_graphs.GraphedCall(lambda b, s: calls.append(1) or b["x"] + 1)
    with torch.inference_mode():
        assert torch.equal(graphed({"x": torch.zeros(2)}), torch.ones(2))
    assert calls == [1] and graphed.graphs == {}


SYNCS = {"aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero"}


@pytest.mark.parametrize("model", ["clip-vit-b32", "minilm-l6", "t5-base"])
@pytest.mark.parametrize("lora_rank", [0, 2])
def test_benchmark_forwards_never_wait_for_the_host_while_a_graph_is_captured(model, lora_rank, monkeypatch):
    """CUDA-graph capture fails on a host synchronisation (`.item()`, a tensor's truth value). transformers skips its
    mask checks while a stream is captured; with that flag forced on here, the static, per-sample and feature forwards
    of the benchmark models run no operator that reads a value back to the host."""
    import transformers.masking_utils
    import transformers.utils.import_utils

    for module in (transformers.utils.import_utils, transformers.masking_utils):
        if hasattr(module, "is_cuda_stream_capturing"):
            monkeypatch.setattr(module, "is_cuda_stream_capturing", lambda: True)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from dawe_throughput import build_workload
    from throughput_models import build_setup

    torch.manual_seed(0)
    setup = build_setup(model, 8, tiny=True)
    work = build_workload(setup.model, 3, torch.device("cpu"), lora_rank)
    inputs = setup.make_inputs(2)
    coefficients = 0.3 + 0.1 * torch.randn(2, 3, work.merger.num_layers)
    for forward in (lambda: work.model(**inputs), lambda: work.merger(inputs, coefficients), lambda: setup.extractor(**inputs)):
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            forward()
        assert not {e.name for e in prof.events()} & SYNCS


def test_the_cuda_graphs_callback_wraps_the_merged_model_and_passes_its_outputs_through():
    """Off a GPU nothing is wrapped; the wrappers themselves (eager on a CPU) return the forward's outputs."""
    from types import SimpleNamespace

    from dawe_merge.methods.cuda_graphs import CudaGraphs, _graphed_merger, _graphed_module

    model, tvs, inputs = _tiny_text_model()
    merger = TaskVectorMerger(model, tvs)
    coefficients = torch.rand(5, T, merger.num_layers)
    with torch.inference_mode():
        assert torch.equal(_graphed_merger(merger, 2)(inputs, coefficients), merger(inputs, coefficients))
        assert torch.equal(_graphed_merger(merger, 2)(inputs, coefficients[0]), merger(inputs, coefficients[0]))
        assert torch.equal(_graphed_module(model, 2)(**inputs), model(**inputs))
    callback = CudaGraphs()
    holder = torch.nn.Module()
    holder.merger = merger
    assert callback._targets(holder) == [merger]
    holder = torch.nn.Module()
    holder.encoder = model
    assert callback._targets(holder) == [model]
    cpu_module = SimpleNamespace(device=torch.device("cpu"), modules=holder.modules, encoder=model)
    callback.on_test_start(None, cpu_module)
    assert callback.wrapped == [] and "forward" not in vars(model)


class _Convolution(torch.nn.Module):
    def __init__(self, **conv) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(1)


@pytest.mark.parametrize("conv", [dict(kernel_size=4, stride=4), dict(kernel_size=3, stride=1, padding=1)], ids=["patches", "overlapping"])
def test_per_sample_convolution_is_exact_as_unfolded_patches_and_as_a_grouped_convolution(conv):
    """A ViT's patch embedding (stride = kernel) runs as unfold and one batched product; other convolutions grouped."""
    torch.manual_seed(2)
    model = _Convolution(**conv).eval()
    tvs = {n: 0.1 * torch.randn(T, *p.shape) for n, p in model.named_parameters()}
    merger = TaskVectorMerger(model, tvs)
    inputs = {"x": torch.randn(3, 3, 8, 8)}
    coefficients = torch.rand(3, T, merger.num_layers)
    with torch.no_grad():
        expected = _reference_per_sample(model, tvs, inputs, coefficients)
        torch.testing.assert_close(merger(inputs, coefficients), expected, atol=1e-5, rtol=1e-5)


def test_a_low_rank_layer_adds_three_operations_to_the_static_forward():
    """Per LoRA layer, whatever the number of tasks: the projection on every A_t, the per-sample scaling and one product
    with every B_t that adds onto the static output (launches are the GPU's cost at small batches)."""
    from benchmarks.kernel_count import kernel_count
    from tests.test_merged_forward import _lora_text_model

    model, stacked, _, inputs = _lora_text_model()
    merger = TaskVectorMerger(model, stacked)
    coefficients = torch.rand(5, T, merger.num_layers)
    cpu = torch.device("cpu")
    with torch.inference_mode():
        static = kernel_count(lambda: model(**inputs), cpu)
        per_sample = kernel_count(lambda: merger(inputs, coefficients), cpu)
    assert per_sample - static <= 3 * len(stacked) + 3, (per_sample, static, len(stacked))
