"""The `merge-cli` command (and `python main.py`): the CLI with the project's exit codes and one-line errors."""
from __future__ import annotations

import os
import signal
import sys

from lightning.pytorch.utilities.exceptions import SIGTERMException

import dawe_merge.families.text  # noqa: F401  (short class names in configs and --help resolve)
import dawe_merge.methods  # noqa: F401
from dawe_merge.cli import cli_main
from dawe_merge.run_checks import check_config_files, user_facing_cause
from dawe_merge.shipped_configs import with_shipped_configs


def main() -> None:
    """Run the CLI on sys.argv; scripts and shells read success from the exit code, so every outcome sets one."""
    interrupted: list[int] = []

    def on_sigint(signum, frame) -> None:  # Lightning turns Ctrl-C into exit(1) with no word of what was kept
        interrupted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        sys.argv[1:] = with_shipped_configs(sys.argv[1:])  # `--config benchmarks/text_minilm.yaml` from any folder
        check_config_files(sys.argv[1:])
        cli_main()
    except SIGTERMException:  # Lightning stops gracefully, but as SystemExit(None): exit code 0 would pass for success
        print("\nerror: stopped by SIGTERM before the run finished; the checkpoints written so far are kept: resume with "
              "`fit ... --ckpt_path <default_root_dir>/checkpoints/last.ckpt`.", file=sys.stderr)  # fmt: skip
        sys.exit(143)
    except (KeyboardInterrupt, SystemExit):
        if not interrupted:
            raise
        print("\nerror: interrupted (Ctrl-C) before the run finished; nothing of this run was written as a result, and the "
              "checkpoints written so far are kept (a `fit` resumes with `--ckpt_path <default_root_dir>/checkpoints/last.ckpt`).",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except Exception as err:  # a config/file problem (however jsonargparse or Lightning wrapped it): one line, no traceback
        cause = user_facing_cause(err)
        if cause is None or os.environ.get("MERGE_DEBUG"):
            raise
        print(f"\nerror: {cause}\n(set MERGE_DEBUG=1 for the full traceback)", file=sys.stderr)
        sys.exit(2)
