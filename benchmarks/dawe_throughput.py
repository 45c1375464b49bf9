"""Throughput and peak memory of exact per-sample DAWE merging, against the reference's way of doing it.

Why: DAWE gives every input its own merged weights θ(x) = θ0 + Σ_t c_t(x) τ_t. The original DAWE code
evaluates that by summing a full state dict in Python for each sample and
running a batch-1 `functional_call`, which is very slow. This project's `TaskVectorMerger` claims to do the
same computation exactly, batched. This script measures, side by side in one process and one run:

  evaluation (samples/s and peak memory, torch.inference_mode, random codings per sample)
    1. static      : weights merged once beforehand (batch-mean coding), plain forward;
    2. per-batch   : one merge per batch with the batch-mean coding (TaskVectorMerger, (T, L) coefficients),
                     the merge is inside the timing;
    3. reference   : the reference's per-sample loop, re-implemented here without TaskVectorMerger: for
                     each sample, θ0 + Σ_t c_t τ_t tensor by tensor (`state_dict_weighted_sum` then
                     `state_dict_add`), then `functional_call` on that sample alone;
    4. per-sample  : TaskVectorMerger with (B, T, L) coefficients (this project's exact path).
  It checks that 3 and 4 give the same outputs and prints ratios against the project's targets:
  per-sample ≥ 0.5× static throughput, ≥ 5× the reference loop, peak memory ≤ 2× static's.

  adaptation (seconds per step; one step = one batch of B inputs for each of the T tasks, forward with the
  hypernetwork's batch-mean coding, entropy of a fixed random per-task head summed over tasks, one backward,
  one Adam step on the hypernetwork)
    a. ours (`TaskVectorMerger.forward_each`: the T tasks' merges built in one product per tensor, as
       `fit` does), features recomputed by the frozen feature extractor every step;
    b. ours, features cached (computed once beforehand; that one-off time is reported separately);
    c. reference: features recomputed, state dict merged in Python tensor by tensor, `functional_call`.
  Target: (c) / (b) ≥ 1.5.

Models have random weights built from configs (no hub access); sizes follow the real checkpoints.
t5-base is the T5 *encoder only* (`T5EncoderModel`), output = mean of the last hidden state over tokens.
Task vectors are 0.01·randn for every parameter (T5: except the relative attention bias); codings are 0.3 + 0.1·randn, (B, T) task-wise or (B, T, L)
layer-wise. Feature-extractor stand-ins: a random ResNet-18 (512-d pooled) for images, a random MiniLM-size
BERT with mean pooling (384-d) for text.

Peak memory.
  CUDA: `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`, minus the allocated memory
  before the variant: exact tensor bytes, excluding the caching allocator's reserve.
  CPU: there is no allocator statistic, so a background thread reads the process RSS from /proc/self/statm
  about every millisecond while the timed batches run; a variant's figure is its peak RSS minus the RSS just
  before it (after a warm-up batch, `gc.collect()` and glibc `malloc_trim(0)`, so freed memory of earlier
  variants is not in the baseline). Limits: allocations that live for less than ~1 ms (or up to the
  interpreter's 5 ms thread switch interval while Python code runs) can be missed; memory glibc keeps after
  a free counts as used until trimmed, which can inflate a figure by fragmentation; pages allocated but never
  touched are not counted; the sampler costs a few percent of one core, equally for every variant. Treat CPU
  figures as ±10 % or a few MiB, whichever is larger. Linux only (elsewhere memory is reported as null).

What the memory ratio counts. Each variant's "counted" memory = its peak extra memory (activations,
per-sample weights, merged copies made during the variant) + the memory of one set of model parameters:
the static model's merged copy for 1, θ0 for 2-4. Variants 2-4 also need the stacked task vectors
(T × parameter memory); every task-vector method needs them and they are shared by all of 2-4, so they are
reported separately and left out of the ratio. The output also prints the ratio with them included.

Usage (from the project root; the exit code is 1 when a variant fails or 3 and 4 disagree, targets aside):
  python benchmarks/dawe_throughput.py --model minilm-l6 --batch-size 16 --tasks 8 --mode task --json out.json
  python benchmarks/dawe_throughput.py --model clip-vit-b32 --mode layer --device cuda
  --threads N sets torch's CPU threads (on a machine shared with other work, fewer threads time more steadily);
  --skip-adaptation measures evaluation only; --repeats sets the timed batches and adaptation steps per variant.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.func import functional_call  # noqa: E402

from dawe_merge.merging.low_rank import FactorStack, LowRankDelta  # noqa: E402
from dawe_merge.merging.state_dict import stack_task_vectors  # noqa: E402
from dawe_merge.models.hypernetwork import Hypernetwork  # noqa: E402
from dawe_merge.per_sample.cuda_graphs import GraphedCall  # noqa: E402
from dawe_merge.per_sample.merged_forward import TaskVectorMerger  # noqa: E402

if __package__:  # imported as benchmarks.dawe_throughput (the tests, python -m from the root)
    from .kernel_count import kernel_count
    from .peak_memory import PeakMemory, release_freed_memory
    from .throughput_models import Inputs, Setup, build_setup
    from .throughput_report import MIB, json_default, print_report, summarise, target_specs, to_json
else:  # run by path from any folder: Python puts benchmarks/ first on sys.path; `dawe_merge` comes from `pip install -e .`
    from kernel_count import kernel_count
    from peak_memory import PeakMemory, release_freed_memory
    from throughput_models import Inputs, Setup, build_setup
    from throughput_report import MIB, json_default, print_report, summarise, target_specs, to_json

NUM_CLASSES = 10


# ---- timing ------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Measurement:
    seconds: list[float]
    peak_extra_bytes: int | None
    items_per_call: int
    error: str | None = None

    @property
    def seconds_per_call(self) -> float:
        return sum(self.seconds) / len(self.seconds) if self.seconds else math.nan

    @property
    def per_second(self) -> float:
        return self.items_per_call / self.seconds_per_call if self.seconds else math.nan

    @property
    def peak_extra_mib(self) -> float | None:
        return None if self.peak_extra_bytes is None else self.peak_extra_bytes / MIB


def measure(fn: Callable[[], object], repeats: int, device: torch.device, items: int) -> tuple[Measurement, object]:
    """One warm-up call, then `repeats` timed calls under the memory meter; returns the last call's result."""
    try:
        result = fn()
        synchronize(device)
        times = []
        with PeakMemory(device).measure() as memory:
            for _ in range(repeats):
                result = None
                start = time.perf_counter()
                result = fn()
                synchronize(device)
                times.append(time.perf_counter() - start)
        return Measurement(times, memory.extra, items), result
    except Exception as error:  # a broken variant must not hide the other figures
        return Measurement([], None, items, error=f"{type(error).__name__}: {error}"), None


# ---- the reference's per-sample merge, written independently of TaskVectorMerger ---------------------
StateDict = dict[str, torch.Tensor]


def reference_merge(theta0: StateDict, task_vectors: list[StateDict], coding: torch.Tensor) -> StateDict:
    """θ0 + Σ_t c_t τ_t tensor by tensor: the reference's `state_dict_weighted_sum` then `state_dict_add`.

    coding (T,) is task-wise; (T, L) is layer-wise with L in the key order of `theta0`.
    """
    weighted = {}
    for layer, key in enumerate(theta0):
        total = torch.zeros_like(task_vectors[0][key])
        for t, tv in enumerate(task_vectors):
            weight = coding[t] if coding.dim() == 1 else coding[t, layer]
            total = torch.add(total, weight * tv[key])
        weighted[key] = total
    return {key: theta0[key] + weighted[key] for key in theta0}


def reference_per_sample(
    model: nn.Module, theta0: StateDict, task_vectors: list[StateDict], inputs: Inputs, codings: torch.Tensor
) -> torch.Tensor:
    """The reference's evaluation: one full merge and one batch-1 forward per sample."""
    outputs = []
    for b in range(codings.shape[0]):
        merged = reference_merge(theta0, task_vectors, codings[b])
        outputs.append(functional_call(model, merged, args=(), kwargs={k: v[b : b + 1] for k, v in inputs.items()}))
    return torch.cat(outputs)


# ---- evaluation variants -----------------------------------------------------------------------------
def static_copy(model: nn.Module, merger: TaskVectorMerger, coefficients: torch.Tensor) -> nn.Module:
    """A separate model whose weights are the merge under `coefficients` (T, L)."""
    static = copy.deepcopy(model)
    merged = merger.merged_parameters(coefficients)
    with torch.no_grad():
        for name, param in static.named_parameters():
            if name in merged:  # tensors left out of the merge keep θ0
                param.copy_(merged[name])
    return static.eval().requires_grad_(False)


def parameter_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class Workload:
    """The primary model on the device, its random task vectors, and the two views the methods need."""

    model: nn.Module
    stacked: dict[str, torch.Tensor | FactorStack]  # name → (T, *shape) or LoRA factors, what TaskVectorMerger takes
    merger: TaskVectorMerger
    theta0: dict[str, torch.Tensor]  # the reference's pretrained state dict (parameters)
    per_task: list[dict[str, torch.Tensor]]  # the reference's T task-vector state dicts (views of `stacked`)


# attention query and value projections of BERT, T5 and CLIP: where the paper's LoRA experts sit
LORA_TARGETS = ("attention.self.query.weight", "attention.self.value.weight", ".q.weight", ".v.weight", "q_proj.weight", "v_proj.weight")


def build_workload(model: nn.Module, tasks: int, device: torch.device, lora_rank: int = 0) -> Workload:
    """Dense task vectors on every tensor, or (lora_rank > 0) LoRA updates B·A·2 on the q/v projections only."""
    model = model.to(device).eval().requires_grad_(False)
    # T5's relative attention bias is indexed by (query, key) position, not per sample, so it cannot be
    # merged per sample; the reference's T5 experts (LoRA on q/v) never change it either.
    params = {n: p for n, p in model.named_parameters() if "relative_attention_bias" not in n}
    if lora_rank:
        params = {n: p for n, p in params.items() if n.endswith(LORA_TARGETS)}
        deltas = [
            {n: LowRankDelta(0.01 * torch.randn(lora_rank, p.shape[1]), 0.01 * torch.randn(p.shape[0], lora_rank), scale=2.0) for n, p in params.items()}
            for _ in range(tasks)
        ]
        stacked = {n: f.to(device) for n, f in stack_task_vectors(deltas).items()}
        per_task = [{n: d[n].dense().to(device) for n in params} for d in deltas]  # the reference sums dense q/v deltas
    else:
        stacked = {n: 0.01 * torch.randn(tasks, *p.shape, device=device) for n, p in params.items()}
        per_task = [{n: tv[t] for n, tv in stacked.items()} for t in range(tasks)]
    theta0 = {n: p.detach() for n, p in params.items()}
    return Workload(model, stacked, TaskVectorMerger(model, stacked), theta0, per_task)


def stack_bytes(stacked: dict) -> int:
    return sum(parameter_bytes([s.A, s.B]) if isinstance(s, FactorStack) else parameter_bytes([s]) for s in stacked.values())


def run_evaluation(args: argparse.Namespace, setup: Setup, work: Workload, device: torch.device) -> dict:
    model, merger, theta0, per_task = work.model, work.merger, work.theta0, work.per_task
    layers = merger.num_layers

    shape = (args.batch_size, args.tasks) if args.mode == "task" else (args.batch_size, args.tasks, layers)
    codings = (0.3 + 0.1 * torch.randn(*shape)).to(device)
    per_sample_coefficients = codings.unsqueeze(-1).expand(*shape, layers) if args.mode == "task" else codings
    inputs = {k: v.to(device) for k, v in setup.make_inputs(args.batch_size).items()}
    static = static_copy(model, merger, per_sample_coefficients.mean(0))
    # the reference loop is timed on its first samples only: its cost per sample does not depend on the batch
    bounded = min(args.reference_samples, args.batch_size)
    first = {k: v[:bounded] for k, v in inputs.items()}

    extractor = setup.extractor.to(device).eval().requires_grad_(False)
    hypernetwork = Hypernetwork(setup.feature_dim, args.tasks * (layers if args.mode == "layer" else 1)).to(device).eval()

    def end_to_end(batch: Inputs) -> torch.Tensor:
        """What DAWE's `test` computes per batch: frozen features, the hypernetwork's codings, the per-sample merge."""
        codings = hypernetwork(extractor(**batch))
        if args.mode == "task":
            return merger(batch, codings.unsqueeze(-1).expand(*codings.shape, layers))
        return merger(batch, codings.view(-1, args.tasks, layers))

    def bf16(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        """fn under bf16 autocast, as `--trainer.precision bf16-mixed` runs a test step."""

        def run() -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return fn()

        return run

    with torch.inference_mode():
        model(**inputs)  # settle one-time lazy initialisation before anything is measured
        variants = {
            "static": (lambda: static(**inputs), args.batch_size),
            "per_batch": (lambda: merger(inputs, per_sample_coefficients.mean(0)), args.batch_size),
            "reference_loop": (lambda: reference_per_sample(model, theta0, per_task, first, codings[:bounded]), bounded),
            "per_sample": (lambda: merger(inputs, per_sample_coefficients), args.batch_size),
        }
        if args.bf16:
            variants["static_bf16"] = (bf16(variants["static"][0]), args.batch_size)
            variants["per_sample_bf16"] = (bf16(variants["per_sample"][0]), args.batch_size)
        if args.end_to_end:
            variants["end_to_end_dawe"] = (lambda: end_to_end(inputs), args.batch_size)
        if args.graphs:  # the same forwards replayed from CUDA graphs (eager on a CPU)
            batch = {**inputs, "coefficients": per_sample_coefficients}
            calls = {
                "static": lambda b: static(**{k: b[k] for k in inputs}),
                "per_sample": lambda b: merger({k: b[k] for k in inputs}, b["coefficients"]),
                "end_to_end_dawe": lambda b: end_to_end({k: b[k] for k in inputs}),
            }
            for name in [n for n in calls if n in variants] + [f"{n}_bf16" for n in calls if f"{n}_bf16" in variants]:
                call = calls[name.removesuffix("_bf16")]
                graphed = GraphedCall(lambda b, _, call=call, low=name.endswith("_bf16"): (bf16 if low else lambda f: f)(lambda: call(b))())
                variants[f"{name}_graphs"] = (partial(graphed, batch), args.batch_size)
        results, outputs, kernels = {}, {}, {}
        for name, (fn, items) in variants.items():
            results[name], outputs[name] = measure(fn, args.repeats, device, items)
            if name != "reference_loop" and not name.endswith("_graphs") and results[name].error is None:
                kernels[name] = kernel_count(fn, device)

    tf32_error = None
    if args.tf32:  # what TF32 does to the outputs: the per-sample forward again with fp32 products, relative max |Δ|
        torch.set_float32_matmul_precision("highest")
        with torch.inference_mode():
            exact = merger(inputs, per_sample_coefficients).float()
        torch.set_float32_matmul_precision("high")
        if outputs.get("per_sample") is not None:
            tf32_error = ((outputs["per_sample"].float() - exact).abs().max() / exact.abs().max()).item()

    def max_diff(a: str, b: str, rows: int) -> float | None:
        if outputs.get(a) is None or outputs.get(b) is None:
            return None
        return (outputs[a][:rows].float() - outputs[b][:rows].float()).abs().max().item()

    return {
        "measurements": results,
        "kernels_per_forward": kernels,
        "reference_samples": bounded,
        "max_abs_diff_reference_vs_per_sample": max_diff("reference_loop", "per_sample", bounded),
        "max_abs_diff_bf16_vs_fp32_per_sample": max_diff("per_sample_bf16", "per_sample", args.batch_size) if args.bf16 else None,
        # replayed graphs run the captured kernels: their outputs must equal the eager forward's exactly
        "max_abs_diff_graphs_vs_eager": max(
            (max_diff(f"{n}_graphs", n, args.batch_size) or 0.0 for n in variants if f"{n}_graphs" in variants), default=None
        ),
        "relative_max_diff_tf32_vs_fp32_per_sample": tf32_error,
        "output_scale": None if outputs["per_sample"] is None else outputs["per_sample"].float().abs().max().item(),
        "parameter_mib": parameter_bytes(theta0.values()) / MIB,
        "task_vector_mib": stack_bytes(work.stacked) / MIB,
        "num_parameters": sum(p.numel() for p in theta0.values()),
        "num_merged_tensors": layers,
    }


# ---- adaptation --------------------------------------------------------------------------------------
def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(p) per row, as in dawe_merge/methods/adaptive.py."""
    log_p = logits.log_softmax(-1)
    return -(log_p.exp() * log_p).sum(-1)


def adaptation_step(
    hypernetwork: nn.Module,
    optimizer: torch.optim.Optimizer,
    heads: nn.ModuleList,
    features: Callable[[int], torch.Tensor],
    forward: Callable[[list[torch.Tensor]], list[torch.Tensor]],
) -> float:
    """Σ_t mean entropy of head_t(model under task t's batch-mean coding); one backward, one Adam step."""
    optimizer.zero_grad(set_to_none=True)
    codings = [hypernetwork(features(t)).mean(0) for t in range(len(heads))]
    outputs = forward(codings)
    loss = torch.stack([softmax_entropy(head(out)).mean() for head, out in zip(heads, outputs)]).sum()
    loss.backward()
    optimizer.step()
    return loss.item()


def run_adaptation(args: argparse.Namespace, setup: Setup, work: Workload, device: torch.device) -> dict:
    model, merger, theta0, per_task = work.model, work.merger, work.theta0, work.per_task
    extractor = setup.extractor.to(device).eval().requires_grad_(False)
    layers = merger.num_layers
    batches = [{k: v.to(device) for k, v in setup.make_inputs(args.batch_size).items()} for _ in range(args.tasks)]
    heads = nn.ModuleList(nn.Linear(setup.out_dim, NUM_CLASSES) for _ in range(args.tasks)).to(device).requires_grad_(False)
    num_codings = args.tasks * (layers if args.mode == "layer" else 1)

    def to_tl(coding: torch.Tensor) -> torch.Tensor:
        return coding.view(args.tasks, layers) if args.mode == "layer" else coding.unsqueeze(-1).expand(args.tasks, layers)

    def recompute(t: int) -> torch.Tensor:
        with torch.no_grad():
            return extractor(**batches[t])

    start = time.perf_counter()
    cache = [recompute(t) for t in range(args.tasks)]
    synchronize(device)
    cache_seconds = time.perf_counter() - start

    def ours(codings: list[torch.Tensor]) -> list[torch.Tensor]:
        return merger.forward_each(batches, torch.stack([to_tl(c) for c in codings]))  # as dawe_merge/methods/adaptive.py

    def reference(codings: list[torch.Tensor]) -> list[torch.Tensor]:
        shaped = [c.view(args.tasks, layers) if args.mode == "layer" else c for c in codings]
        return [functional_call(model, reference_merge(theta0, per_task, c), args=(), kwargs=b) for c, b in zip(shaped, batches)]

    def per_task_step(hypernetwork: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        """As `backward_per_task: true` in dawe_merge/methods/adaptive.py: one merged model alive at a time."""
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for t in range(args.tasks):
            (out,) = merger.forward_each([batches[t]], to_tl(hypernetwork(cache[t]).mean(0)).unsqueeze(0))
            loss = softmax_entropy(heads[t](out)).mean()
            loss.backward()
            total += loss.item()
        optimizer.step()
        return total

    variants = {
        "ours_recomputed_features": (recompute, ours),
        "ours_cached_features": (lambda t: cache[t], ours),
        "reference": (recompute, reference),
        "ours_per_task_backward": None,
    }
    results = {}
    for name, pair in variants.items():
        torch.manual_seed(args.seed)
        hypernetwork = Hypernetwork(setup.feature_dim, num_codings).to(device)
        optimizer = torch.optim.Adam(hypernetwork.parameters(), lr=1e-5)
        if pair is None:
            step = partial(per_task_step, hypernetwork, optimizer)
        else:
            step = partial(adaptation_step, hypernetwork, optimizer, heads, *pair)
        results[name], _ = measure(step, args.repeats, device, 1)
        del hypernetwork, optimizer
    return {
        "measurements": results,
        "feature_cache_seconds": cache_seconds,
        "feature_dim": setup.feature_dim,
        "num_codings": num_codings,
    }


# ---- entry point -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["clip-vit-b32", "minilm-l6", "t5-base"], default="minilm-l6")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=8, help="number of task vectors T")
    parser.add_argument("--mode", choices=["task", "layer"], default="task", help="codings (B, T) task-wise or (B, T, L) layer-wise")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--lora-rank", type=int, default=0, help="LoRA experts of this rank on the q/v projections (0: dense task vectors everywhere)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per input (text models)")
    parser.add_argument("--reference-samples", type=int, default=4, help="the reference loop runs and is timed on this many samples of the batch")
    parser.add_argument("--bf16", action="store_true", help="also time static and per-sample under bf16 autocast (as --trainer.precision bf16-mixed)")
    parser.add_argument("--graphs", action="store_true", help="also time static, per-sample (and end-to-end) forwards replayed from CUDA graphs")
    parser.add_argument("--end-to-end", action="store_true", help="also time DAWE's whole test step: features, hypernetwork, per-sample merge")
    parser.add_argument("--tf32", action="store_true", help="let fp32 matrix products use TF32 tensor cores (CUDA)")
    parser.add_argument("--resnet-depth", type=int, choices=[18, 50], default=18, help="the image feature extractor stand-in")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches / adaptation steps per variant (plus 1 warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |Δoutput| for the reference vs per-sample check")
    parser.add_argument("--skip-adaptation", action="store_true", help="measure evaluation only")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # 2-layer, narrow models for tests
    args = parser.parse_args(argv)
    if min(args.batch_size, args.tasks, args.repeats, args.reference_samples) < 1:
        parser.error("--batch-size, --tasks, --repeats and --reference-samples must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs every measurement; returns 0, or 1 when a variant failed or the reference/per-sample check disagrees."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is available.", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    setup = build_setup(args.model, args.seq_len, args.tiny, args.resnet_depth)
    work = build_workload(setup.model, args.tasks, device, args.lora_rank)

    evaluation = run_evaluation(args, setup, work, device)
    release_freed_memory()
    if args.skip_adaptation:
        skipped = {k: Measurement([], None, 1, error="skipped") for k in ("ours_recomputed_features", "ours_cached_features", "reference", "ours_per_task_backward")}
        adaptation = {"measurements": skipped, "feature_cache_seconds": None, "feature_dim": setup.feature_dim, "num_codings": None}
    else:
        adaptation = run_adaptation(args, setup, work, device)
    summary = summarise(evaluation, adaptation, target_specs(device, args.lora_rank, args.batch_size, args.graphs, args.end_to_end))
    print_report(args, evaluation, adaptation, summary, device)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(args, evaluation, adaptation, summary, device), indent=2, default=json_default))
        print(f"\nwrote {args.json}")
    diff = evaluation["max_abs_diff_reference_vs_per_sample"]
    failed = [n for n, x in evaluation["measurements"].items() if x.error]
    failed += [n for n, x in adaptation["measurements"].items() if x.error and x.error != "skipped"]
    return 0 if not failed and diff is not None and diff < args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
