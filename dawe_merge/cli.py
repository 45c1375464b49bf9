"""LightningCLI subclass: `class_path` picks the method and TaskPool; `test` writes the report, `validate` the
report on the validation splits, `predict` predictions.jsonl; `--export_dir` writes the merged model.

Each stage's resolved config is written beside that stage's outputs, as
`results/<benchmark>/<method>/<stage>_config.yaml`, only when the stage succeeded: a `test` never
overwrites its `fit`'s config, and nothing lands in the working directory.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path

from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

# Frozen models sit in eval mode on purpose (merged backbones, feature extractors): Lightning's
# reminder about it, and two deprecation notices from inside the libraries, are noise for users.
for _message in (r"Found \d+ module\(s\) in eval mode", r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"'set_vital' is deprecated"):
    warnings.filterwarnings("ignore", message=_message)

from dawe_merge.callbacks import PredictionsJsonl, RandomStateInCheckpoints, ReportWriter  # noqa: E402  (after the warning filters)
from dawe_merge.cli_options import add_project_options  # noqa: E402  (after the warning filters)
from dawe_merge.config_errors import one_line  # noqa: E402  (after the warning filters)
from dawe_merge.errors import ConfigError  # noqa: E402  (after the warning filters)
from dawe_merge.export.hub_push import push_export  # noqa: E402  (after the warning filters)
from dawe_merge.export.recipe import recipe_text  # noqa: E402  (after the warning filters)
from dawe_merge.export.trainer import MergeTrainer  # noqa: E402  (after the warning filters)
from dawe_merge.legacy_names import current_class_paths  # noqa: E402  (after the warning filters)
from dawe_merge.methods.base import MergedModelModule  # noqa: E402  (after the warning filters)
from dawe_merge.methods.dawe import DAWE_NEEDS_FEATURES  # noqa: E402  (after the warning filters)
from dawe_merge.progress import StepProgressBar  # noqa: E402  (after the warning filters)
from dawe_merge.quiet import asked_verbose, quiet_libraries  # noqa: E402  (after the warning filters)
from dawe_merge.reports.artifacts import write_adaptation  # noqa: E402  (after the warning filters)
from dawe_merge.reports.atomic import write_text_atomic  # noqa: E402  (after the warning filters)
from dawe_merge.reports.location import default_results_dir  # noqa: E402  (after the warning filters)
from dawe_merge.run_checks import check_checkpoint_file, check_checkpoint_use, check_exportable, check_writable  # noqa: E402  (after the warning filters)
from dawe_merge.run_folder import check_no_earlier_checkpoints, release_held_locks, release_run_lock, take_run_lock  # noqa: E402  (after the warning filters)
from dawe_merge.run_loggers import build, hold_back, pin_checkpoints, with_built  # noqa: E402  (after the warning filters)
from dawe_merge.taskpool.base import TaskPool  # noqa: E402  (after the warning filters)

DESCRIPTION = (
    "Train-and-merge: fine-tune task experts (fit with ExpertFineTuning), merge them (task arithmetic, TIES, AdaMerging, "
    "DAWE), evaluate on a TaskPool (test), on validation splits (validate), predict, or write the merge (export). Stack configs: "
    "--config configs/benchmarks/<benchmark>.yaml --config configs/methods/<method>.yaml (from any folder, the shipped configs are "
    "found by name: --config benchmarks/<benchmark>.yaml; paths inside them are read from the working folder); "
    "`<subcommand> --help` lists every option."
)


def _then_release(after):
    """An `after_<subcommand>` hook that gives the results folder's lock back once its files are written (dawe_merge/run_folder.py)."""

    def run(self) -> None:
        try:
            after(self)
        finally:
            if self.trainer.is_global_zero:
                release_run_lock(self._results_folder())

    run.__doc__ = after.__doc__
    return run


class MergeCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's four, and `export`: the merged model written without an evaluation (MergeTrainer.export)."""
        lightning = LightningCLI.subcommands()
        # `verbose` is the project's option for every subcommand (below); test and validate pass it on to Lightning
        return {**lightning, "test": {*lightning["test"], "verbose"}, "validate": {*lightning["validate"], "verbose"}, "export": {"model", "datamodule"}}

    def __init__(self, *args, **kwargs) -> None:
        given = kwargs.get("args")
        quiet_libraries(asked_verbose(sys.argv[1:] if given is None else [str(a) for a in given]))
        self._held_loggers: list[dict] = []
        self._configured_logger: tuple | None = None
        program = "merge-cli" if Path(sys.argv[0]).name == "merge-cli" else "python main.py"
        self.command = f"{program} " + shlex.join(sys.argv[1:] if given is None else [str(a) for a in given])
        try:
            super().__init__(*args, **kwargs)
        except ArgumentError as err:  # a config mistake, however deep in a class_path block: one line
            raise ConfigError(one_line(str(err))) from err

    def instantiate_trainer(self, **kwargs):
        """Without --trainer.default_root_dir, the run folder is runs/<benchmark>/<method>, beside where results go.

        Method configs then name no run folder, so a run of any family never writes into another benchmark's runs.
        The config's loggers write there (dawe_merge/run_loggers.py), checkpoints go to its checkpoints/ folder, and
        progress is counted in steps.
        """
        config = {**(self.config_init[self.subcommand] if self.subcommand else self.config_init)["trainer"], **kwargs}
        if config.get("default_root_dir") is None and isinstance(self.datamodule, TaskPool):
            kwargs["default_root_dir"] = str(Path("runs") / self.datamodule.benchmark / self.model.report_name)
        run = Path(kwargs.get("default_root_dir") or config.get("default_root_dir") or os.getcwd())
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(StepProgressBar())  # steps k/N, not Lightning's epochs of an endless stream
        pin_checkpoints(callbacks, run)
        results = (self.config[self.subcommand] if self.subcommand else self.config).get("results_dir") or default_results_dir()
        own = {"test": [ReportWriter(results, self.command, self._seed())], "predict": [PredictionsJsonl(results)]}.get(self.subcommand, [])
        kwargs["callbacks"] = [*callbacks, RandomStateInCheckpoints(), *own]
        kwargs["logger"] = with_built(config.get("logger"), build(self._held_loggers, run))
        if self._configured_logger is not None:  # the config as given, for the saved config and the export's recipe
            (self.config[self.subcommand] if self.subcommand else self.config).trainer.logger = self._configured_logger[0]
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        """Loggers are held back for the run folder; a method with a `feature_extractor` argument and none given takes
        the benchmark's `features`.

        Method configs then stay family-agnostic: the benchmark, which knows its inputs, names the view.
        A checkpoint's own extractor (restored into the method's arguments) always wins over the benchmark's.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is not None:  # loggers without a save_dir are built in the run folder, once it is known
            self._configured_logger = (trainer.get("logger"),)
            trainer.logger, self._held_loggers = hold_back(trainer.get("logger"))
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

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Lightning reads a checkpoint's hyperparameters right after parsing, before any hook: check the file first."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            check_checkpoint_file(self.config[subcommand].get("ckpt_path"), subcommand)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_project_options(parser)

    def _results_folder(self) -> Path:
        return Path(self.config[self.subcommand].results_dir) / self.datamodule.benchmark / self.model.report_name

    def _check_inputs(self) -> None:
        """Before any work: the checkpoint is one this method can load, and the results can be written."""
        config = self.config[self.subcommand]
        check_checkpoint_use(config.get("ckpt_path"), self.model.loads_checkpoints, self.model.report_name)
        if config.get("export_push_to_hub") is not None and config.get("export_dir") is None:
            raise ConfigError("--export_push_to_hub uploads the folder --export_dir writes: give --export_dir too.")
        if config.get("export_dir") is not None:
            check_exportable(self.model, self.subcommand, config.get("export_dir"), config.get("export_overwrite"))
        if self.trainer.is_global_zero and self.subcommand != "export":
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

    def test(self, **kwargs) -> None:
        """Lightning's `test`, its metric tables printed only with --verbose (the run prints the project's own table)."""
        self.trainer.test(**kwargs, verbose=bool(self.config[self.subcommand].get("verbose")))

    def validate(self, **kwargs) -> None:
        """Lightning's `validate`, its metric tables printed only with --verbose."""
        self.trainer.validate(**kwargs, verbose=bool(self.config[self.subcommand].get("verbose")))

    def before_validate(self) -> None:
        self._name_the_start()
        self._check_inputs()

    def before_export(self) -> None:
        config, model = self.config[self.subcommand], self.model
        if config.get("export_dir") is None:
            raise ConfigError("`export` writes the merged model to --export_dir: give it (a new folder, or an earlier export with --export_overwrite).")
        if model.loads_checkpoints and config.get("ckpt_path") is None and getattr(model, "hypernetwork_init", None) is None:
            raise ConfigError(
                f"'{model.report_name}' is adapted by `fit`: give --ckpt_path <run>/checkpoints/last.ckpt. (Its un-adapted start is "
                "task arithmetic: export configs/methods/task_arithmetic.yaml for that.)"
            )
        self._check_inputs()

    def after_export(self) -> None:
        self._export()

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
        """Rank 0 says where PredictionsJsonl wrote predictions.jsonl (one line per input)."""
        writer = self._callback(PredictionsJsonl)
        if writer is not None and writer.written is not None and self.trainer.is_global_zero:
            print(f"\n{writer.count} predictions written to {writer.written}")

    def _export(self) -> None:
        config = self.config[self.subcommand]
        if config.get("export_dir") is None or not self.trainer.is_global_zero:
            return
        out = self.model.export(config.export_dir, task_vector_dtype=config.get("export_task_vector_dtype"), command=self.command,
                                recipe=self._recipe(), overwrite=bool(config.get("export_overwrite")))  # fmt: skip
        print(f"Merged model exported to {out}")
        if config.get("export_push_to_hub"):
            print(f"Pushed to the hub: {push_export(out, config.export_push_to_hub)}")

    def _recipe(self) -> str:
        """This run as an `export` config (dawe_merge/export/recipe.py); after `fit`, naming the run's last checkpoint."""
        dumped = current_class_paths(self._parser(self.subcommand).dump(self.config[self.subcommand], skip_none=False))
        last = (getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "") if self.subcommand == "fit" else None
        return recipe_text(dumped, self.command, last)

    @_then_release
    def after_test(self) -> None:
        """Rank 0 prints the report ReportWriter wrote and saves the config (and export) beside it.

        A file after the report that fails (config, export) is named, and the run still succeeds.
        """
        writer = self._callback(ReportWriter)
        out = writer.written if writer is not None else None
        if out is None or not self.trainer.is_global_zero:
            return
        print(f"\n{(out / 'report.md').read_text()}\nReport written to {out}; the comparison table of every method: {out.parent / 'README.md'}")
        self._save_or_warn("test_config.yaml", lambda: self._write_config(out))
        self._save_or_warn("the export", self._export)

    def _callback(self, kind: type):
        return next((c for c in self.trainer.callbacks if isinstance(c, kind)), None)

    def _seed(self):
        config = self.config[self.subcommand] if self.subcommand else self.config
        return config.get("seed_everything")

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
        text = current_class_paths(self._parser(self.subcommand).dump(self.config[self.subcommand], skip_none=False))
        write_text_atomic(out / f"{self.subcommand}_config.yaml", text)


def cli_main(args: list[str] | None = None, run: bool = True) -> MergeCLI:
    from lightning import LightningDataModule

    try:
        return MergeCLI(
            MergedModelModule,
            LightningDataModule,
            trainer_class=MergeTrainer,
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
