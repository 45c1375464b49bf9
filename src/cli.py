"""LightningCLI subclass: `class_path` picks the method and TaskPool; `test` writes the report."""
from __future__ import annotations

import shlex
import sys

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from src.methods.base import MergedModelModule
from src.reports.writer import write_report


class MergeCLI(LightningCLI):
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
            command="python main.py " + shlex.join(sys.argv[1:]),
            seed=config.seed_everything,
        )
        print(f"\nReport written to {out}\n")
        print((out.parent / "README.md").read_text())


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
