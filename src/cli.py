"""LightningCLI subclass: `class_path` picks the method and TaskPool; `test` writes the report."""
from __future__ import annotations

import shlex
import sys
import warnings
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

# Frozen models sit in eval mode on purpose (merged backbones, feature extractors): Lightning's
# reminder about it, and two deprecation notices from inside the libraries, are noise for users.
for _message in (r"Found \d+ module\(s\) in eval mode", r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"'set_vital' is deprecated"):
    warnings.filterwarnings("ignore", message=_message)

from src.methods.base import MergedModelModule
from src.reports.artifacts import write_adaptation, write_coefficients
from src.reports.writer import write_report


class MergeCLI(LightningCLI):
    def __init__(self, *args, **kwargs) -> None:
        given = kwargs.get("args")
        self.command = "python main.py " + shlex.join(sys.argv[1:] if given is None else [str(a) for a in given])
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--results_dir", type=str, default="results", help="Root folder of the test reports.")

    def after_test(self) -> None:
        """Rank 0 writes results/<benchmark>/<method>/ and prints the benchmark's comparison table."""
        report = getattr(self.model, "test_report", None)
        if report is None or not self.trainer.is_global_zero:
            return
        config = self.config[self.subcommand]
        out = write_report(
            report,
            results_dir=config.results_dir,
            benchmark=self.datamodule.benchmark,
            method=self.model.report_name,
            command=self.command,
            seed=config.seed_everything,
        )
        write_coefficients(self.model, out)
        print(f"\nReport written to {out}\n")
        print((out.parent / "README.md").read_text())

    def after_fit(self) -> None:
        """Rank 0 writes the adaptation curve and exports the trainable part with its metadata."""
        if not self.trainer.is_global_zero or getattr(self.model, "history", None) is None:
            return
        out = Path(self.config[self.subcommand].results_dir) / self.datamodule.benchmark / self.model.report_name
        write_adaptation(self.model, out, Path(self.trainer.default_root_dir))


def cli_main(args: list[str] | None = None, run: bool = True) -> MergeCLI:
    from lightning import LightningDataModule

    return MergeCLI(
        MergedModelModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )
