"""The GPU check: every method through the CLI on a GPU, equal to the same runs on the CPU, then the speed rows.

    make gpu-check                      # one CUDA GPU: python scripts/gpu_check.py --device cuda --out results/gpu
    python scripts/gpu_check.py --dry   # the same harness with the CPU standing in, each path once: both families, crossings on one (the suite runs this)

On tiny stand-ins built on the fly in a temporary Hugging Face cache (tests/hub_cache.py: the committed old-format
checkpoints under the paper configs' hub ids, hub-layout datasets), for a dense family (the CLIP ViT-B/32 config)
and a LoRA family (the Flan-T5-base config):
  1. every method of dawe_merge/methods/registry.py — `fit` (adaptive ones, 2 steps) then `test`, once on the
     device and once on the CPU;
  2. the reports must agree: accuracies equal, losses within 1e-4 + 1e-3·|loss| (float32 kernels differ by device);
  3. each adaptive method's checkpoint written on the device is tested on the CPU, and the CPU's on the device,
     with the same agreement; each DAWE run's exported folder (`test --export_dir`), loaded with `load_dawe` on
     the same device, gives the report's accuracies exactly; the device's runs tested again with the CudaGraphs
     callback give the same reports;
  4. the speed rows, one after the other on an idle device: `benchmarks/dawe_throughput.py` (eager and CUDA graphs,
     fp32 and bf16, DAWE's whole test step) and `benchmarks/linear_paths.py` (the cost rule, fp32 and bf16);
     with --dry one tiny CPU row of each.
Step 4 runs first, on an idle device; the runs of 1-3 then go side by side (both families, the device's and the CPU's
runs at once, then the crossings), so the whole check fits a short lease.
`--out DIR` receives gpu_check.json (every figure) and gpu_check.md (the tables the README shows).
Exit status 0 when every check passed, 1 otherwise (each failure is printed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `dawe_merge` is installed (`make setup`: pip install -e .), but the hub test builders in tests/ are not: they are read from this checkout
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.gpu_table import markdown  # noqa: E402
from dawe_merge.methods.registry import method_names  # noqa: E402
from tests.hub_cache import fill_user_hub, hub_environment  # noqa: E402

LOAD_FAILURES: list[str] = []  # DAWE folders exported by `test --export_dir` whose load_dawe accuracies differ from the report

FAMILIES = {
    "dense": "configs/benchmarks/clip_vit_b32.yaml",
    "lora": "configs/benchmarks/flan_t5_base.yaml",
}
STATIC = method_names(adaptive=False)  # every method config (dawe_merge/methods/registry.py)
ADAPTIVE = method_names(adaptive=True)
# the GPU-speed rows (benchmarks/README.md): dense ViT-B/32 task-wise at batch 16 and 64 and layer-wise at 16, LoRA T5-base
# task-wise and MiniLM layer-wise, dense MiniLM task-wise; each eager and from CUDA graphs, fp32 and bf16 (the raw bf16
# forward: `test`'s fp32 second look at close calls is timed by `make precision`); DAWE's whole test step where the
# vision and text configs need it. Adaptation is timed on the rows of the first GPU table only.
SPEED = ["--bf16", "--graphs", "--repeats", "10"]
THROUGHPUT_ROWS = {
    "ViT-B/32 dense task-wise, batch 16": ["--model", "clip-vit-b32", "--mode", "task", "--batch-size", "16", "--end-to-end", "--resnet-depth", "50"],
    "ViT-B/32 dense task-wise, batch 64": ["--model", "clip-vit-b32", "--mode", "task", "--batch-size", "64", "--skip-adaptation"],
    "ViT-B/32 dense layer-wise, batch 16": ["--model", "clip-vit-b32", "--mode", "layer", "--batch-size", "16"],
    "T5-base LoRA r16 task-wise, batch 16": ["--model", "t5-base", "--mode", "task", "--lora-rank", "16"],
    "MiniLM LoRA r16 layer-wise, batch 16": ["--model", "minilm-l6", "--mode", "layer", "--lora-rank", "16"],
    "MiniLM dense task-wise, batch 16": ["--model", "minilm-l6", "--mode", "task", "--end-to-end", "--skip-adaptation"],
    # TF32 products in the reference loop and the per-sample path alike: agreement within TF32's rounding
    "ViT-B/32 dense task-wise, batch 16, TF32": ["--model", "clip-vit-b32", "--mode", "task", "--batch-size", "16", "--tf32", "--skip-adaptation", "--tolerance", "5e-3"],
}
DRY_ROWS = {"MiniLM tiny task-wise (dry)": ["--model", "minilm-l6", "--mode", "task", "--tiny", "--repeats", "1", "--skip-adaptation", "--graphs", "--end-to-end"]}
GRAPHED = ["task_arithmetic", "dawe_task_wise", "dawe_layer_wise"]  # tested again with the CudaGraphs callback

RUN = r"""
import json, sys
import torch
import dawe_merge.families.seq2seq, dawe_merge.families.vision, dawe_merge.methods
from dawe_merge.cli import cli_main

bench, accelerator, out, ckpt_from = sys.argv[1:5]
static, adaptive, extra = json.loads(sys.argv[5]), json.loads(sys.argv[6]), json.loads(sys.argv[7])
common = extra + ["--trainer.accelerator", accelerator, "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
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
        from dawe_merge.export import load_dawe

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


def run_methods(family: str, accelerator: str, out: Path, env: dict, ckpt_from: Path | None = None,
                methods: tuple[list[str], list[str]] = (STATIC, ADAPTIVE), extra: tuple[str, ...] = ()) -> dict:  # fmt: skip
    bench = FAMILIES[family]
    static, adaptive = methods
    static = [] if ckpt_from and methods == (STATIC, ADAPTIVE) else static
    command = [sys.executable, "-c", RUN, bench, accelerator, str(out), str(ckpt_from or "-"), json.dumps(static), json.dumps(adaptive), json.dumps(list(extra))]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{family} on {accelerator} failed:\n{proc.stderr[-3000:]}")
    reports = json.loads(proc.stdout.split("REPORTS ", 1)[1])
    for method, accuracies in reports.pop("_loaded", {}).items():
        for task, accuracy in accuracies.items():
            if float(torch.tensor(accuracy, dtype=torch.float32)) != reports[method][task]["accuracy"]:  # reports hold float32
                LOAD_FAILURES.append(f"[{family}] {method} exported and loaded on {accelerator}: {task} accuracy {accuracy} vs {reports[method][task]['accuracy']}")
    return reports


def in_parallel(jobs: dict) -> tuple[dict, dict]:
    """Independent CLI runs side by side (each its own process): their reports, and the error of each that failed."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        reports, errors = {}, {}
        for key, future in futures.items():
            try:
                reports[key] = future.result()
            except Exception as error:  # noqa: BLE001 - reported as a failure, the other runs still count
                errors[key] = str(error)
        return reports, errors


def method_checks(root: Path, env: dict, accelerator: str, dry: bool) -> list[str]:
    """Steps 1-3 for both families at once: the first wave runs on the device and the CPU, the second crosses them."""
    failures = []
    env = {**env, "OMP_NUM_THREADS": "4"}  # up to six processes share the CPU cores
    t = time.perf_counter()
    first = {}
    for family in FAMILIES:
        base = root / family
        first[(family, "device")] = partial(run_methods, family, accelerator, base / "device", env)
        if not dry:
            first[(family, "cpu")] = partial(run_methods, family, "cpu", base / "cpu", env)
    reports, errors = in_parallel(first)
    second = {}
    for family in FAMILIES:
        base = root / family
        if (family, "device") in errors or (dry and family != "dense"):  # dry: one family covers the harness's crossings
            continue
        second[(family, "device_ckpt_on_cpu")] = partial(run_methods, family, "cpu", base / "cross_cpu", env, ckpt_from=base / "device")
        second[(family, "graphs")] = partial(run_methods, family, accelerator, base / "graphs", env, ckpt_from=base / "device",
                                             methods=(GRAPHED[:1], GRAPHED[1:]), extra=("--trainer.callbacks+=dawe_merge.methods.CudaGraphs",))  # fmt: skip
        if not dry and (family, "cpu") not in errors:
            second[(family, "cpu_ckpt_on_device")] = partial(run_methods, family, accelerator, base / "cross_device", env, ckpt_from=base / "cpu")
    more, more_errors = in_parallel(second)
    reports.update(more)
    errors.update(more_errors)
    failures += [f"[{family}] {run}: {error}" for (family, run), error in errors.items()]
    for family in FAMILIES:
        got = {run: reports[(family, run)] for run in ("device", "cpu", "device_ckpt_on_cpu", "graphs", "cpu_ckpt_on_device") if (family, run) in reports}
        if "device" not in got:
            continue
        device = got["device"]
        if "device_ckpt_on_cpu" in got:
            failures += disagreements(f"[{family}] device checkpoint tested on cpu:", {m: device[m] for m in ADAPTIVE}, got["device_ckpt_on_cpu"])
        if "graphs" in got:
            failures += disagreements(f"[{family}] CUDA graphs vs eager on the device:", {m: device[m] for m in GRAPHED}, got["graphs"])
        if "cpu" in got:
            failures += disagreements(f"[{family}] device vs cpu:", got["cpu"], device)
        if "cpu_ckpt_on_device" in got:
            failures += disagreements(f"[{family}] cpu checkpoint tested on device:", {m: got["cpu"][m] for m in ADAPTIVE}, got["cpu_ckpt_on_device"])
    where = "cpu (dry)" if dry else f"{accelerator} and cpu"
    print(f"[dense] and [lora] {len(STATIC) + len(ADAPTIVE)} methods on {where}, checkpoints tested again, CUDA graphs: "
          f"{len(first) + len(second)} runs in {time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    return failures


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


def speed_rows(device: str, dry: bool, out: Path, only: list[str] | None = None) -> tuple[list[str], dict]:
    """Step 4, one row at a time: each script writes its JSON, read back into one dict; `only`: the throughput rows
    whose label contains one of these strings, and no cost-rule runs."""
    failures, figures = [], {"throughput": {}, "linear_paths": {}}
    rows = {label: row for label, row in (DRY_ROWS if dry else THROUGHPUT_ROWS).items() if not only or any(part in label for part in only)}
    jobs = [("throughput", label, ["benchmarks/dawe_throughput.py", "--device", device, *row] + ([] if dry else SPEED)) for label, row in rows.items()]
    for dtype in [] if only else ["fp32"] if dry else ["fp32", "bf16"]:
        sizes = ["--batch-sizes", "2", "--tokens", "1", "8", "--repeats", "1"] if dry else ["--batch-sizes", "16", "64"]
        jobs.append(("linear_paths", dtype, ["benchmarks/linear_paths.py", "--device", device, "--dtype", dtype, *sizes]))
    for kind, label, command in jobs:
        target = out / f"{kind}_{len(figures[kind])}.json"
        print("$", " ".join(command), flush=True)
        try:
            proc = subprocess.run([sys.executable, *command, "--json", str(target)], cwd=ROOT, capture_output=True, text=True, timeout=150)
        except subprocess.TimeoutExpired:
            failures.append(f"{kind} {label}: did not finish in 150 s")
            continue
        print(proc.stdout[-1800:], flush=True)
        if proc.returncode != 0 or not target.exists():
            failures.append(f"{kind} {label}: exit {proc.returncode}: {proc.stderr[-500:]}")
        if target.exists():
            figures[kind][label] = json.loads(target.read_text())
    return failures, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda"], default="cuda", help="the device checked against the CPU")
    parser.add_argument("--dry", action="store_true", help="the CPU stands in for the device (no GPU needed): checks the harness")
    parser.add_argument("--skip-throughput", action="store_true", help="the method checks only")
    parser.add_argument("--skip-methods", action="store_true", help="the speed rows only")
    parser.add_argument("--rows", nargs="+", default=None, help="only the throughput rows whose label holds one of these (a re-measurement)")
    parser.add_argument("--out", type=Path, default=None, help="write gpu_check.json and gpu_check.md here")
    args = parser.parse_args()
    accelerator = "cpu" if args.dry else "gpu"
    environment = {"torch": torch.__version__, "device": "cpu (dry)"}
    if not args.dry:
        if not torch.cuda.is_available():
            print("error: no CUDA device here (torch.cuda.is_available() is False); run with --dry to check the harness on the CPU", file=sys.stderr)
            return 2
        environment["device"] = torch.cuda.get_device_name(0)
        print("device:", environment["device"], "| torch", torch.__version__, flush=True)
    start, failures, figures = time.perf_counter(), [], {}

    def write() -> None:
        environment["total_s"] = round(time.perf_counter() - start)
        if args.out and figures:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu_check.json").write_text(json.dumps({"environment": environment, "failures": failures, **figures}, indent=1))
            (args.out / "gpu_check.md").write_text(markdown(environment, figures))
            print(f"wrote {args.out / 'gpu_check.md'} and gpu_check.json", flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        root = Path(tmp)
        if not args.skip_throughput:  # first, while nothing else runs on the device
            speed_failures, figures = speed_rows("cpu" if args.dry else args.device, args.dry, args.out or root / "speed", args.rows)
            failures += speed_failures
            environment["speed_rows_s"] = round(time.perf_counter() - start)
            write()
        if not args.skip_methods:
            t = time.perf_counter()
            env = hub_environment(fill_user_hub(root), online=False, root=root)
            failures += method_checks(root, env, accelerator, args.dry)
            failures += LOAD_FAILURES
            environment["method_checks_s"] = round(time.perf_counter() - t)
    write()
    for failure in failures:
        print("FAIL", failure)
    print(f"gpu check: {'passed' if not failures else f'{len(failures)} failure(s)'} in {time.perf_counter() - start:.0f} s"
          f"{' (dry: the CPU stood in for the GPU)' if args.dry else ''}")  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
