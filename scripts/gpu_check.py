"""The GPU check: every method through the CLI on a GPU, equal to the same runs on the CPU, then throughput rows.

    make gpu-check                      # one CUDA GPU: python scripts/gpu_check.py --device cuda
    python scripts/gpu_check.py --dry   # the same harness with the CPU standing in for the GPU, each path once (the suite runs this)

On tiny stand-ins built on the fly in a temporary Hugging Face cache (tests/hub_cache.py: the committed old-format
checkpoints under the paper configs' hub ids, hub-layout datasets), for a dense family (the CLIP ViT-B/32 config)
and a LoRA family (the Flan-T5-base config):
  1. every method — pretrained, individual, simple average, task arithmetic, TIES, AdaMerging and DAWE task- and
     layer-wise — `fit` (adaptive ones, 2 steps) then `test`, once on the device and once on the CPU;
  2. the reports must agree: accuracies equal, losses within 1e-4 + 1e-3·|loss| (float32 kernels differ by device);
  3. each adaptive method's checkpoint written on the device is tested on the CPU, and the CPU's on the device,
     with the same agreement; each DAWE run's exported folder (`test --export_dir`), loaded with `load_dawe` on
     the same device, gives the report's accuracies exactly;
  4. `benchmarks/dawe_throughput.py --device cuda` rows (skipped with --dry, which runs one tiny CPU row instead).
Exit status 0 when every check passed, 1 otherwise (each failure is printed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `src` is installed (`make setup`: pip install -e .), but the hub test builders in tests/ are not: they are read from this checkout
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests.hub_cache import fill_user_hub, hub_environment  # noqa: E402

LOAD_FAILURES: list[str] = []  # DAWE folders exported by `test --export_dir` whose load_dawe accuracies differ from the report

FAMILIES = {
    "dense": "configs/benchmarks/clip_vit_b32.yaml",
    "lora": "configs/benchmarks/flan_t5_base.yaml",
}
STATIC = ["pretrained", "individual", "simple_average", "task_arithmetic", "ties"]
ADAPTIVE = ["adamerging_task_wise", "adamerging_layer_wise", "dawe_task_wise", "dawe_layer_wise"]
# the GPU-speed rows: dense ViT-B/32 at batch 16 and 64, LoRA MiniLM and T5-base, task- and layer-wise, fp32 and bf16 autocast
# (the raw bf16 forward: `test`'s fp32 second look at close calls is timed by `make precision`, not here)
THROUGHPUT_ROWS = [
    *(["--model", "clip-vit-b32", "--mode", mode, "--batch-size", batch, "--bf16"] for mode in ("task", "layer") for batch in ("16", "64")),
    *(["--model", model, "--mode", mode, "--lora-rank", "16", "--bf16"] for model in ("minilm-l6", "t5-base") for mode in ("task", "layer")),
]

RUN = r"""
import json, sys
import torch
import src.families.seq2seq, src.families.vision, src.methods
from src.cli import cli_main

bench, accelerator, out, ckpt_from = sys.argv[1:5]
static, adaptive = json.loads(sys.argv[5]), json.loads(sys.argv[6])
common = ["--trainer.accelerator", accelerator, "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
          "--results_dir", f"{out}/results", "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
          "--data.init_args.adapt_batch_size", "4", "--seed_everything", "0"]
if "clip" in bench:
    common += ["--model.init_args.modelpool.init_args.head_cache_dir", f"{out}/heads"]
reports = {}
for method in static + adaptive:
    args = ["--config", bench, "--config", f"configs/methods/{method}.yaml"] + common
    if method in static:
        reports[method] = cli_main(["test", *args]).model.test_report
        continue
    run = f"{out}/runs/{method}"
    if ckpt_from == "-":
        cli_main(["fit", *args, "--trainer.max_steps", "2", "--trainer.val_check_interval", "1", "--trainer.limit_val_batches", "1",
                  "--trainer.default_root_dir", run])
    ckpt = f"{run if ckpt_from == '-' else ckpt_from + '/runs/' + method}/checkpoints/last.ckpt"
    export = ["--export_dir", f"{out}/export/{method}"] if method.startswith("dawe") and ckpt_from == "-" else []
    cli = cli_main(["test", *args, "--trainer.default_root_dir", run, "--ckpt_path", ckpt, *export])
    reports[method] = cli.model.test_report
    if export:  # the exported folder, loaded on the same device, must give the report's accuracies
        from src.export import load_dawe

        model = load_dawe(export[1], "cuda" if accelerator == "gpu" else "cpu")
        for i, task in enumerate(cli.datamodule.task_names):
            outputs, labels = [], []
            for batch in cli.datamodule.test_dataloader()[i]:
                out_ = model(batch, task=task)
                outputs.append(out_.predicted if hasattr(out_, "predicted") else out_ if out_.dim() == 1 else out_.argmax(-1))
                labels.append(batch["label"])
            predicted, truth = torch.cat(outputs).cpu(), torch.cat(labels)
            if predicted.is_floating_point():  # a regression task's numbers: Spearman's rho, as the report scores them
                from torchmetrics.functional import spearman_corrcoef

                score = float(spearman_corrcoef(predicted.nan_to_num(0.0), truth.float()))  # no number written: 0.0, as scored
            else:
                score = float((predicted == truth).float().mean())
            reports.setdefault("_loaded", {}).setdefault(method, {})[task] = score
print("REPORTS " + json.dumps(reports))
"""


def run_methods(family: str, accelerator: str, out: Path, env: dict, ckpt_from: Path | None = None) -> dict:
    bench = FAMILIES[family]
    static = [] if ckpt_from else STATIC
    command = [sys.executable, "-c", RUN, bench, accelerator, str(out), str(ckpt_from or "-"), json.dumps(static), json.dumps(ADAPTIVE)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{family} on {accelerator} failed:\n{proc.stderr[-3000:]}")
    reports = json.loads(proc.stdout.split("REPORTS ", 1)[1])
    for method, accuracies in reports.pop("_loaded", {}).items():
        for task, accuracy in accuracies.items():
            if float(torch.tensor(accuracy, dtype=torch.float32)) != reports[method][task]["accuracy"]:  # reports hold float32
                LOAD_FAILURES.append(f"[{family}] {method} exported and loaded on {accelerator}: {task} accuracy {accuracy} vs {reports[method][task]['accuracy']}")
    return reports


def disagreements(label: str, expected: dict, got: dict) -> list[str]:
    """Every task metric where `got` departs from `expected` beyond the stated tolerance."""
    found = []
    for method, report in expected.items():
        for task, metrics in report.items():
            if not isinstance(metrics, dict):
                continue
            other = got[method][task]
            if other["accuracy"] != metrics["accuracy"]:
                found.append(f"{label} {method} {task}: accuracy {metrics['accuracy']} vs {other['accuracy']}")
            if abs(other["loss"] - metrics["loss"]) > 1e-4 + 1e-3 * abs(metrics["loss"]):
                found.append(f"{label} {method} {task}: loss {metrics['loss']:.6f} vs {other['loss']:.6f}")
    return found


def throughput(device: str, dry: bool) -> list[str]:
    rows = [["--model", "minilm-l6", "--mode", "task", "--tiny", "--repeats", "1", "--skip-adaptation"]] if dry else THROUGHPUT_ROWS
    failures = []
    for row in rows:
        command = [sys.executable, "benchmarks/dawe_throughput.py", "--device", device, *row] + ([] if dry else ["--repeats", "5"])
        print("$", " ".join(command[1:]), flush=True)
        try:
            proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            failures.append(f"throughput {' '.join(row)}: did not finish in 120 s")
            continue
        print(proc.stdout[-2500:], flush=True)
        if proc.returncode != 0:
            failures.append(f"throughput {' '.join(row)}: exit {proc.returncode}: {proc.stderr[-500:]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda"], default="cuda", help="the device checked against the CPU")
    parser.add_argument("--dry", action="store_true", help="the CPU stands in for the device (no GPU needed): checks the harness")
    parser.add_argument("--skip-throughput", action="store_true", help="the method checks only")
    args = parser.parse_args()
    accelerator = "cpu" if args.dry else "gpu"
    if not args.dry:
        if not torch.cuda.is_available():
            print("error: no CUDA device here (torch.cuda.is_available() is False); run with --dry to check the harness on the CPU", file=sys.stderr)
            return 2
        print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, flush=True)
    start, failures = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        root = Path(tmp)
        env = hub_environment(fill_user_hub(root), online=False, root=root)
        for family in FAMILIES:
            t = time.perf_counter()
            on_device = run_methods(family, accelerator, root / family / "device", env)
            device_ckpt_on_cpu = run_methods(family, "cpu", root / family / "cross_cpu", env, ckpt_from=root / family / "device")
            failures += disagreements(f"[{family}] device checkpoint tested on cpu:", {m: on_device[m] for m in ADAPTIVE}, device_ckpt_on_cpu)
            if args.dry:  # a second CPU run and the other crossing would repeat these on the same CPU: each path runs once
                print(f"[{family}] {len(STATIC) + len(ADAPTIVE)} methods on cpu (dry), checkpoints tested again: {time.perf_counter() - t:.0f} s", flush=True)
                continue
            on_cpu = run_methods(family, "cpu", root / family / "cpu", env)
            failures += disagreements(f"[{family}] device vs cpu:", on_cpu, on_device)
            cpu_ckpt_on_device = run_methods(family, accelerator, root / family / "cross_device", env, ckpt_from=root / family / "cpu")
            failures += disagreements(f"[{family}] cpu checkpoint tested on device:", {m: on_cpu[m] for m in ADAPTIVE}, cpu_ckpt_on_device)
            print(f"[{family}] {len(STATIC) + len(ADAPTIVE)} methods on {accelerator} and cpu, checkpoints both ways: "
                  f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    failures += LOAD_FAILURES
    if not args.skip_throughput:
        failures += throughput("cpu" if args.dry else args.device, args.dry)
    for failure in failures:
        print("FAIL", failure)
    print(f"gpu check: {'passed' if not failures else f'{len(failures)} failure(s)'} in {time.perf_counter() - start:.0f} s"
          f"{' (dry: the CPU stood in for the GPU)' if args.dry else ''}")  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
