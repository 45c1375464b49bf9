"""LightningCLI subclass: `class_path` picks the method and TaskPool; `test` writes the report, `validate` the
report on the validation splits, `predict` predictions.jsonl; `--export_dir` writes the merged model.

Each stage's resolved config is written beside that stage's outputs, as
`results/<benchmark>/<method>/<stage>_config.yaml`, only when the stage succeeded: a `test` never
overwrites its `fit`'s config, and nothing lands in the working directory.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Literal, Optional

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

# Frozen models sit in eval mode on purpose (merged backbones, feature extractors): Lightning's
# reminder about it, and two deprecation notices from inside the libraries, are noise for users.
for _message in (r"Found \d+ module\(s\) in eval mode", r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"'set_vital' is deprecated"):
    warnings.filterwarnings("ignore", message=_message)

from src.config_errors import one_line  # noqa: E402  (after the warning filters)
from src.errors import ConfigError  # noqa: E402  (after the warning filters)
from src.methods.base import MergedModelModule  # noqa: E402  (after the warning filters)
from src.methods.dawe import DAWE_NEEDS_FEATURES  # noqa: E402  (after the warning filters)
from src.models.features import FeatureExtractor  # noqa: E402  (after the warning filters)
from src.reports.artifacts import write_adaptation, write_coefficients  # noqa: E402  (after the warning filters)
from src.reports.atomic import write_text_atomic  # noqa: E402  (after the warning filters)
from src.reports.writer import write_report  # noqa: E402  (after the warning filters)
from src.run_checks import ResultsNotWritableError, check_checkpoint_file, check_checkpoint_use, check_exportable, check_writable  # noqa: E402  (after the warning filters)
from src.run_folder import check_no_earlier_checkpoints, release_held_locks, release_run_lock, take_run_lock  # noqa: E402  (after the warning filters)
from src.taskpool.base import TaskPool  # noqa: E402  (after the warning filters)

DESCRIPTION = (
    "Train-and-merge: fine-tune task experts (fit with ExpertFineTuning), merge them (task arithmetic, TIES, AdaMerging, "
    "DAWE), evaluate on a TaskPool (test), on validation splits (validate), or predict. Stack configs: "
    "--config configs/benchmarks/<benchmark>.yaml --config configs/methods/<method>.yaml; `<subcommand> --help` lists every option."
)


def _then_release(after):
    """An `after_<subcommand>` hook that gives the results folder's lock back once its files are written (src/run_folder.py)."""

    def run(self) -> None:
        try:
            after(self)
        finally:
            if self.trainer.is_global_zero:
                release_run_lock(self._results_folder())

    run.__doc__ = after.__doc__
    return run


class MergeCLI(LightningCLI):
    def __init__(self, *args, **kwargs) -> None:
        given = kwargs.get("args")
        self.command = "python main.py " + shlex.join(sys.argv[1:] if given is None else [str(a) for a in given])
        try:
            super().__init__(*args, **kwargs)
        except ArgumentError as err:  # a config mistake, however deep in a class_path block: one line
            raise ConfigError(one_line(str(err))) from err

    def _instantiate_trainer(self, config: dict, callbacks: list):
        """Without --trainer.default_root_dir, checkpoints go to runs/<benchmark>/<method>, beside where results go.

        Method configs then name no run folder, so a run of any family never writes into another benchmark's runs.
        """
        if config.get("default_root_dir") is None and isinstance(self.datamodule, TaskPool):
            config = {**config, "default_root_dir": str(Path("runs") / self.datamodule.benchmark / self.model.report_name)}
        return super()._instantiate_trainer(config, callbacks)

    def before_instantiate_classes(self) -> None:
        """A method with a `feature_extractor` argument and none given takes the benchmark's `features`.

        Method configs then stay family-agnostic: the benchmark, which knows its inputs, names the view.
        A checkpoint's own extractor (restored into the method's arguments) always wins over the benchmark's.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        method_args = config.model.get("init_args")
        if method_args is None or "feature_extractor" not in method_args:
            return
        if method_args.feature_extractor is None:
            if config.get("features") is None:
                raise ConfigError(DAWE_NEEDS_FEATURES)
            method_args.feature_extractor = config.features
        elif config.get("features") is not None and config.features != method_args.feature_extractor:
            print(f"note: {config.model.class_path.rsplit('.', 1)[-1]} uses the feature_extractor its config or checkpoint names "
                  f"({method_args.feature_extractor.class_path}), not the benchmark's `features`.", file=sys.stderr)  # fmt: skip

    def _parse_ckpt_path(self) -> None:
        """Lightning reads the checkpoint's hyperparameters here, before any hook: check the file first."""
        subcommand = self.config.get("subcommand")
        if subcommand:
            check_checkpoint_file(self.config[subcommand].get("ckpt_path"), subcommand)
        super()._parse_ckpt_path()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_subclass_arguments(
            FeatureExtractor, "features", required=False, instantiate=False,
            help="The benchmark's frozen feature view for methods that read per-input features (DAWE), used when the method "
                 "config names no feature_extractor. Benchmark configs name their default; an overlay in configs/features/ swaps it.",
        )  # fmt: skip
        parser.add_argument("--results_dir", type=str, default="results", help="Root folder of the test reports.")
        parser.add_argument(
            "--export_dir", type=Optional[str], default=None,
            help="After `test` (or an adaptive method's `fit`), write the merged model here: a from_pretrained folder "
                 "with a model card, or for DAWE a folder that src.export.load_dawe runs.",
        )  # fmt: skip
        parser.add_argument(
            "--export_task_vector_dtype", type=Optional[Literal["float32", "bfloat16"]], default=None,
            help="DAWE export: store dense task vectors in this dtype (bfloat16 halves the folder); default: as the run held them.",
        )  # fmt: skip

    def _results_folder(self) -> Path:
        return Path(self.config[self.subcommand].results_dir) / self.datamodule.benchmark / self.model.report_name

    def _check_inputs(self) -> None:
        """Before any work: the checkpoint is one this method can load, and the results can be written."""
        config = self.config[self.subcommand]
        check_checkpoint_use(config.get("ckpt_path"), self.model.loads_checkpoints, self.model.report_name)
        if config.get("export_dir") is not None:
            check_exportable(self.model, self.subcommand, config.get("export_dir"))
        if self.trainer.is_global_zero:
            check_writable(self._results_folder())
            take_run_lock(self._results_folder(), "Results folder", "--results_dir (or --model.init_args.name)")

    def before_fit(self) -> None:
        self._check_inputs()
        run = Path(self.trainer.default_root_dir)
        if self.config[self.subcommand].get("ckpt_path") is None:
            for folder in self._checkpoint_folders():
                check_no_earlier_checkpoints(folder, run)
        if self.trainer.is_global_zero:  # DDP ranks are this run: rank 0 holds the lock for them
            take_run_lock(run)

    def _checkpoint_folders(self) -> set[Path]:
        """Where this fit's checkpoints go: a callback's own folder, else <run>/checkpoints when no logger versions them."""
        folders = set()
        for callback in self.trainer.checkpoint_callbacks:
            if callback.dirpath is not None:
                folders.add(Path(callback.dirpath))
            elif not self.trainer.loggers:
                folders.add(Path(self.trainer.default_root_dir) / "checkpoints")
        return folders

    def before_test(self) -> None:
        self._name_the_start()
        self._check_inputs()
        self._test_started = time.perf_counter()  # the report records how long `test` took: setup, merges, evaluation

    def before_validate(self) -> None:
        self._name_the_start()
        self._check_inputs()

    def before_predict(self) -> None:
        self._name_the_start()
        self._check_inputs()
        if isinstance(self.datamodule, TaskPool) and self.datamodule.predict_file is not None:  # read before any model loads
            self.datamodule.user_inputs(self.model.modelpool.input_column)

    def _name_the_start(self) -> None:
        """An adaptive method run without --ckpt_path evaluates its un-adapted start: under its own name, never the adapted run's."""
        model = self.model
        if not model.loads_checkpoints or self.config[self.subcommand].get("ckpt_path") is not None:
            return
        if getattr(model, "hypernetwork_init", None) is not None:  # a hypernetwork adapted elsewhere: not the start
            return
        adapted = model.report_name
        model.report_name = f"{adapted}_start"
        print(f"note: no --ckpt_path: {self.subcommand} runs {adapted}'s un-adapted start (task arithmetic with its init_lambda) "
              f"and writes it as '{model.report_name}'; results of the adapted '{adapted}' are left as they are.", file=sys.stderr)  # fmt: skip

    @_then_release
    def after_validate(self) -> None:
        """Rank 0 writes the report on the validation splits (held out from training data) as validation.json."""
        report = getattr(self.model, "validation_report", None)
        if report is None or not self.trainer.is_global_zero:
            return
        out = self._results_folder()
        write_text_atomic(out / "validation.json", json.dumps({"split": "val", "report": report, "command": self.command}, indent=2) + "\n")
        rows = [f"  {task}: {100 * values['accuracy']:.2f}" for task, values in report.items()]
        print(f"\nValidation accuracy (held-out training data), written to {out / 'validation.json'}:\n" + "\n".join(rows))

    @_then_release
    def after_predict(self) -> None:
        """Rank 0 writes predictions.jsonl: one line per input with its task, class, probabilities (and coefficients)."""
        if not self.trainer.is_global_zero:
            return
        out = self._results_folder() / "predictions.jsonl"
        write_text_atomic(out, "".join(json.dumps(row) + "\n" for row in self.model.predictions))
        print(f"\n{len(self.model.predictions)} predictions written to {out}")

    def _export(self) -> None:
        config = self.config[self.subcommand]
        if config.get("export_dir") is None or not self.trainer.is_global_zero:
            return
        out = self.model.export(config.export_dir, task_vector_dtype=config.get("export_task_vector_dtype"), command=self.command)
        print(f"Merged model exported to {out}")

    @_then_release
    def after_test(self) -> None:
        """Rank 0 writes results/<benchmark>/<method>/ and prints the benchmark's comparison table.

        The report comes first; if it cannot be written the error says so and prints it, so the evaluation is
        not lost. A file after it that fails (coefficients, config, export) is named, and the run still succeeds.
        """
        report = getattr(self.model, "test_report", None)
        if report is None or not self.trainer.is_global_zero:
            return
        config = self.config[self.subcommand]
        try:
            out = write_report(report, results_dir=config.results_dir, benchmark=self.datamodule.benchmark, method=self.model.report_name,
                               command=self.command, seed=config.seed_everything, seconds=time.perf_counter() - self._test_started)  # fmt: skip
        except OSError as err:
            print(json.dumps(report, indent=1), file=sys.stdout)
            raise ResultsNotWritableError(
                f"The evaluation finished, but its report could not be written to '{self._results_folder()}' ({err.strerror or err}); "
                "the report is printed above. Free space or choose another --results_dir, and run `test` again."
            ) from err
        print(f"\nReport written to {out}\n")
        print((out.parent / "README.md").read_text())
        self._save_or_warn("coefficients", lambda: write_coefficients(self.model, out))
        self._save_or_warn("test_config.yaml", lambda: self._write_config(out))
        self._save_or_warn("the export", self._export)

    def _save_or_warn(self, what: str, save) -> None:
        """Write a secondary result; on a file-system error say what is missing instead of failing the finished run."""
        try:
            save()
        except OSError as err:
            print(f"warning: {what} could not be written ({err.strerror or err}); the report was written. Free space and rerun to add it.",
                  file=sys.stderr)  # fmt: skip

    @_then_release
    def after_fit(self) -> None:
        """Rank 0 writes the resolved config and, after adaptation, the curve and the trainable export; then the run
        folder is free for the next fit."""
        if not self.trainer.is_global_zero:
            return
        try:
            out = self._results_folder()
            out.mkdir(parents=True, exist_ok=True)
            if getattr(self.model, "history", None) is not None:
                write_adaptation(self.model, out, Path(self.trainer.default_root_dir))
            self._write_config(out)
            self._export()
        finally:
            release_run_lock(Path(self.trainer.default_root_dir))

    def _write_config(self, out: Path) -> None:
        text = self._parser(self.subcommand).dump(self.config[self.subcommand], skip_none=False)
        write_text_atomic(out / f"{self.subcommand}_config.yaml", text)


def cli_main(args: list[str] | None = None, run: bool = True) -> MergeCLI:
    from lightning import LightningDataModule

    try:
        return MergeCLI(
            MergedModelModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=None,  # the resolved config goes beside each stage's outputs instead
            parser_kwargs={"exit_on_error": False, "description": DESCRIPTION},  # config mistakes reach MergeCLI as errors, made one line there
            auto_configure_optimizers=False,  # every trained method owns its optimizer and lr (model.init_args.lr): no --optimizer
            args=args,
            run=run,
        )
    finally:  # a run that failed gives its folders back at once, not only when its process ends
        release_held_locks()
