"""What dawe_throughput.py prints and writes: its figures, the ratios against the project's targets, the JSON.

Kept apart from the measuring so that each file has one job; every number here comes from the measurements.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path

import torch

MIB = 2**20
# ratio name → (label, "min" or "max", bound): the project's evaluation targets on CPU
TARGET_SPECS = {
    "per_sample_vs_static_throughput": ("per-sample / static throughput", "min", 0.5),
    "per_sample_vs_reference_speedup": ("per-sample / reference-loop speed", "min", 5.0),
    "memory_per_sample_vs_static": ("peak memory per-sample / static", "max", 2.0),
}


def target_specs(device: torch.device, lora_rank: int, batch_size: int, graphs: bool = False, end_to_end: bool = False) -> dict[str, tuple[str, str, float]]:
    """The targets that apply: on a GPU, per-sample ≥ 0.6× static at batch 16 and 0.7× from batch 64 (dense),
    ≥ 0.9× with LoRA experts, ≥ 20× the reference loop, both sides replayed from CUDA graphs when measured so, and
    DAWE's whole test step ≥ 0.5× the static model's; on CPU, TARGET_SPECS."""
    if device.type != "cuda":
        return TARGET_SPECS
    static = 0.9 if lora_rank else (0.7 if batch_size >= 64 else 0.6)
    prefix, label = ("graphs_", " (CUDA graphs)") if graphs else ("", "")
    specs = {
        f"{prefix}per_sample_vs_static_throughput": (f"per-sample / static throughput{label}", "min", static),
        f"{prefix}per_sample_vs_reference_speedup": (f"per-sample{label} / reference-loop speed", "min", 20.0),
        "memory_per_sample_vs_static": TARGET_SPECS["memory_per_sample_vs_static"],
    }
    if end_to_end:
        specs[f"{prefix}end_to_end_vs_static_throughput"] = (f"DAWE test step / static{label}", "min", 0.5)
    return specs


ADAPT_TARGET = 1.5

def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def summarise(evaluation: dict, adaptation: dict, specs: dict = TARGET_SPECS) -> dict:
    m = evaluation["measurements"]
    params_mib, tv_mib = evaluation["parameter_mib"], evaluation["task_vector_mib"]

    def counted(name: str) -> float | None:
        extra = m[name].peak_extra_mib
        return None if extra is None else extra + params_mib

    with_task_vectors = None if counted("per_sample") is None else counted("per_sample") + tv_mib
    ratios = {
        "per_sample_vs_static_throughput": ratio(m["per_sample"].per_second, m["static"].per_second),
        "per_sample_vs_reference_speedup": ratio(m["per_sample"].per_second, m["reference_loop"].per_second),
        "memory_per_sample_vs_static": ratio(counted("per_sample"), counted("static")),
        "memory_per_sample_with_task_vectors_vs_static": ratio(with_task_vectors, counted("static")),
    }
    if "per_sample_bf16" in m:  # informative, no target: what bf16 autocast buys on this device
        ratios["bf16_per_sample_vs_bf16_static_throughput"] = ratio(m["per_sample_bf16"].per_second, m["static_bf16"].per_second)
        ratios["bf16_per_sample_vs_fp32_per_sample_throughput"] = ratio(m["per_sample_bf16"].per_second, m["per_sample"].per_second)
    for prefix in ("", "graphs_"):
        suffix = "_graphs" if prefix else ""
        if f"per_sample{suffix}" in m and prefix:
            ratios["graphs_per_sample_vs_static_throughput"] = ratio(m["per_sample_graphs"].per_second, m["static_graphs"].per_second)
            ratios["graphs_per_sample_vs_reference_speedup"] = ratio(m["per_sample_graphs"].per_second, m["reference_loop"].per_second)
            ratios["graphs_vs_eager_static"] = ratio(m["static_graphs"].per_second, m["static"].per_second)
            ratios["graphs_vs_eager_per_sample"] = ratio(m["per_sample_graphs"].per_second, m["per_sample"].per_second)
        if f"end_to_end_dawe{suffix}" in m:
            ratios[f"{prefix}end_to_end_vs_static_throughput"] = ratio(m[f"end_to_end_dawe{suffix}"].per_second, m[f"static{suffix}"].per_second)
        if f"per_sample_bf16{suffix}" in m and prefix:
            ratios["graphs_bf16_per_sample_vs_fp32_per_sample_throughput"] = ratio(m["per_sample_bf16_graphs"].per_second, m["per_sample_graphs"].per_second)
            ratios["graphs_bf16_per_sample_vs_bf16_static_throughput"] = ratio(m["per_sample_bf16_graphs"].per_second, m["static_bf16_graphs"].per_second)
    checks = {name: _meets(ratios.get(name), kind, bound) for name, (_, kind, bound) in specs.items()}
    a = adaptation["measurements"]
    adapt_speedup = ratio(a["reference"].seconds_per_call, a["ours_cached_features"].seconds_per_call)
    return {
        "counted_mib": {name: counted(name) for name in m},
        "specs": specs,
        "ratios": ratios,
        "checks": checks,
        "adaptation_speedup_cached_vs_reference": adapt_speedup,
        "adaptation_check": _meets(adapt_speedup, "min", ADAPT_TARGET),
    }


def _meets(value: float | None, kind: str, bound: float) -> bool | None:
    if value is None:
        return None
    return value >= bound if kind == "min" else value <= bound


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def print_report(args: argparse.Namespace, evaluation: dict, adaptation: dict, summary: dict, device: torch.device) -> None:
    m = evaluation["measurements"]
    print(
        f"\nDAWE throughput — {args.model}{' (tiny)' if args.tiny else ''}, {args.mode}-wise, batch {args.batch_size}, "
        f"{args.tasks} task vectors, device {device}, {torch.get_num_threads()} CPU threads, "
        f"{args.repeats} timed batches + 1 warm-up"
    )
    print(
        f"merged tensors: {evaluation['num_merged_tensors']}, holding {evaluation['num_parameters'] / 1e6:.2f} M parameters = "
        f"{evaluation['parameter_mib']:.1f} MiB (with LoRA experts only the q/v projections); stacked task vectors "
        f"{evaluation['task_vector_mib']:.1f} MiB"
    )
    labels = {
        "static": "1 static merged model",
        "per_batch": "2 one merge per batch",
        "reference_loop": f"3 reference loop ({evaluation['reference_samples']} smp)",
        "per_sample": "4 exact per-sample (ours)",
        "static_bf16": "1 static, bf16 autocast",
        "per_sample_bf16": "4 per-sample, bf16 autocast",
        "end_to_end_dawe": "5 DAWE test step (features+)",
        **{f"{n}_graphs": f"{label.split(' ', 1)[0]}g {label.split(' ', 1)[1]}, graphs" for n, label in (
            ("static", "1 static"), ("per_sample", "4 per-sample"), ("static_bf16", "1 static bf16"),
            ("per_sample_bf16", "4 per-sample bf16"), ("end_to_end_dawe", "5 DAWE test step"))},
    }
    kernels = evaluation["kernels_per_forward"]
    print(f"\n{'variant':<30}{'samples/s':>11}{'s/batch':>10}{'peak extra MiB':>16}{'counted MiB':>13}{'kernels':>9}")
    for name, label in labels.items():
        if name not in m:
            continue
        x = m[name]
        if x.error:
            print(f"{label:<30}  FAILED: {x.error}")
            continue
        figures = (_fmt(x.per_second), _fmt(x.seconds_per_call, 3), _fmt(x.peak_extra_mib, 1), _fmt(summary["counted_mib"][name], 1))
        count = str(kernels.get(name, "–"))
        print(f"{label:<30}{figures[0]:>11}{figures[1]:>10}{figures[2]:>16}{figures[3]:>13}{count:>9}")
    what = "CUDA kernels" if device.type == "cuda" else "leaf ATen operators that do work"
    print(
        f"kernels = {what} in one forward (torch profiler). The reference loop runs on the first "
        f"{evaluation['reference_samples']} samples of the batch only (--reference-samples): its time per sample does not "
        "depend on the batch, and a whole batch of it can take minutes."
    )
    print(
        "counted = peak extra during the variant + one set of parameters (1: its merged copy; 2-4: θ0). The task vectors,\n"
        f"needed by 2-4 alike, are not counted ({evaluation['task_vector_mib']:.1f} MiB)."
    )
    diff = evaluation["max_abs_diff_reference_vs_per_sample"]
    agree = diff is not None and diff < args.tolerance
    print(
        f"\nreference loop vs exact per-sample: max |Δoutput| = {_fmt(diff, 8)} -> {'AGREE' if agree else 'DISAGREE'} "
        f"(tolerance {args.tolerance:g})"
    )
    r, c = summary["ratios"], summary["checks"]
    for name, (label, kind, bound) in summary["specs"].items():
        print(f"{label:<34}: {_fmt(r.get(name))}x  (target {'>=' if kind == 'min' else '<='} {bound}x) {_verdict(c[name])}")
    if "per_sample_bf16" in m:
        print(
            f"bf16 autocast: per-sample / static {_fmt(r['bf16_per_sample_vs_bf16_static_throughput'])}x, per-sample bf16 / fp32 "
            f"{_fmt(r['bf16_per_sample_vs_fp32_per_sample_throughput'])}x; max |Δoutput| bf16 vs fp32 per-sample "
            f"{_fmt(evaluation['max_abs_diff_bf16_vs_fp32_per_sample'], 5)} (outputs up to {_fmt(evaluation['output_scale'], 3)} in size)"
        )
    if "per_sample_graphs" in m:
        print(
            f"CUDA graphs: static {_fmt(r.get('graphs_vs_eager_static'))}x its eager speed, per-sample {_fmt(r.get('graphs_vs_eager_per_sample'))}x; "
            f"outputs vs eager max |Δ| {_fmt(evaluation['max_abs_diff_graphs_vs_eager'], 8)}"
        )
    if "per_sample_bf16_graphs" in m:
        print(
            f"bf16 with graphs: per-sample / static {_fmt(r.get('graphs_bf16_per_sample_vs_bf16_static_throughput'))}x, "
            f"per-sample bf16 / fp32 {_fmt(r.get('graphs_bf16_per_sample_vs_fp32_per_sample_throughput'))}x"
        )
    if evaluation.get("relative_max_diff_tf32_vs_fp32_per_sample") is not None:
        print(f"TF32: per-sample outputs differ from fp32 products' by {_fmt(evaluation['relative_max_diff_tf32_vs_fp32_per_sample'], 6)} (max |Δ| / max |output|)")
    if "end_to_end_dawe" in m:
        print(f"DAWE test step / static: eager {_fmt(r.get('end_to_end_vs_static_throughput'))}x, graphs {_fmt(r.get('graphs_end_to_end_vs_static_throughput'))}x")
    print(f"  (memory with the task vectors counted too: {_fmt(r['memory_per_sample_with_task_vectors_vs_static'])}x)")

    a = adaptation["measurements"]
    print(
        f"\nadaptation step ({args.tasks} tasks x {args.batch_size} inputs, batch-mean coding, entropy, backward, Adam; "
        f"hypernetwork {adaptation['feature_dim']} -> {adaptation['num_codings']})"
    )
    print(f"{'variant':<38}{'s/step':>9}{'peak extra MiB':>16}")
    for name, label in (
        ("ours_recomputed_features", "a ours, features recomputed"),
        ("ours_cached_features", "b ours, features cached"),
        ("reference", "c reference (Python merge, recomputed)"),
        ("ours_per_task_backward", "d ours, cached, backward per task"),
    ):
        x = a[name]
        if x.error:
            print(f"{label:<38}  FAILED: {x.error}")
            continue
        print(f"{label:<38}{_fmt(x.seconds_per_call, 3):>9}{_fmt(x.peak_extra_mib, 1):>16}")
    print(f"computing the feature cache once: {_fmt(adaptation['feature_cache_seconds'], 3)} s")
    print(
        f"adaptation speed-up, ours cached vs reference: {_fmt(summary['adaptation_speedup_cached_vs_reference'])}x "
        f"(target >= {ADAPT_TARGET}x) {_verdict(summary['adaptation_check'])}"
    )
    if device.type == "cpu":
        print("\nCPU memory = sampled process RSS (~1 ms), peak minus the level before each variant; limits: see the docstring.")


def to_json(args: argparse.Namespace, evaluation: dict, adaptation: dict, summary: dict, device: torch.device) -> dict:
    def dump(x) -> dict:  # a Measurement
        return {
            **asdict(x),
            "seconds_per_call": None if math.isnan(x.seconds_per_call) else x.seconds_per_call,
            "per_second": None if math.isnan(x.per_second) else x.per_second,
            "peak_extra_mib": x.peak_extra_mib,
        }

    diff = evaluation["max_abs_diff_reference_vs_per_sample"]
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "environment": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
            "memory_method": "cuda max_memory_allocated" if device.type == "cuda" else "sampled RSS (/proc/self/statm)",
        },
        "evaluation": {
            **{k: v for k, v in evaluation.items() if k != "measurements"},
            "variants": {name: dump(x) for name, x in evaluation["measurements"].items()},
            "outputs_agree": diff is not None and diff < args.tolerance,
            "counted_mib": summary["counted_mib"],
            "ratios": summary["ratios"],
            "targets": {name: bound for name, (_, _, bound) in summary["specs"].items()},
            "checks": summary["checks"],
        },
        "adaptation": {
            **{k: v for k, v in adaptation.items() if k != "measurements"},
            "variants": {name: dump(x) for name, x in adaptation["measurements"].items()},
            "speedup_cached_vs_reference": summary["adaptation_speedup_cached_vs_reference"],
            "target": ADAPT_TARGET,
            "check": summary["adaptation_check"],
        },
    }




def json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


