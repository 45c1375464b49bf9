"""The options every subcommand has besides Lightning's: the benchmark's feature view, where results and exports go,
and how much a run prints. Their help texts are what `python main.py <subcommand> --help` shows."""
from __future__ import annotations

from typing import Literal, Optional

from lightning.pytorch.cli import LightningArgumentParser

from dawe_merge.models.features import FeatureExtractor
from dawe_merge.reports.location import RESULTS_DIR_VARIABLE, default_results_dir


def add_project_options(parser: LightningArgumentParser) -> None:
    """Declarations only, apart from the MergeCLI hooks that act on them: what `--help` lists besides Lightning's."""
    parser.add_subclass_arguments(
        FeatureExtractor, "features", required=False, instantiate=False,
        help="The benchmark's frozen feature view for methods that read per-input features (DAWE), used when the method "
             "config names no feature_extractor. Benchmark configs name their default; an overlay in configs/features/ swaps it.",
    )  # fmt: skip
    parser.add_argument("--results_dir", type=str, default=default_results_dir(),
                        help=f"Root folder of the test reports (default: results, or ${RESULTS_DIR_VARIABLE} when set).")  # fmt: skip
    parser.add_argument(
        "--verbose", type=bool, default=False,
        help="Also print Lightning's device lines, tips and metric tables, and the weight-loading bars (by default a run prints "
             "its own lines and one results table).",
    )  # fmt: skip
    parser.add_argument(
        "--export_dir", type=Optional[str], default=None,
        help="Write the merged model here (`export`, or at the end of `test` and an adaptive method's `fit`): a "
             "from_pretrained folder, or for DAWE a folder that dawe_merge.export.load_dawe runs; with a model card and recipe.yaml.",
    )  # fmt: skip
    parser.add_argument(
        "--export_overwrite", type=bool, default=False,
        help="Replace an earlier export at --export_dir (only the files its merge_info.json lists; a folder holding anything else is refused).",
    )  # fmt: skip
    parser.add_argument(
        "--export_push_to_hub", type=Optional[str], default=None,
        help="After writing --export_dir, upload it to this hub repo (owner/name; created if missing). A failed push keeps the folder.",
    )  # fmt: skip
    parser.add_argument(
        "--export_task_vector_dtype", type=Optional[Literal["float32", "bfloat16"]], default=None,
        help="DAWE export: store dense task vectors in this dtype (bfloat16 halves the folder); default: as the run held them.",
    )  # fmt: skip
