"""Entry point: python main.py fit|validate|test|predict --config configs/....yaml"""
import os
import sys

import src.families.text  # noqa: F401  (short class names in configs and --help resolve)
import src.methods  # noqa: F401
from src.cli import cli_main
from src.errors import UserFacingError

if __name__ == "__main__":
    try:
        cli_main()
    except UserFacingError as err:  # a config/file problem: say what and how to fix, no traceback
        if os.environ.get("MERGE_DEBUG"):
            raise
        print(f"\nerror: {err}\n(set MERGE_DEBUG=1 for the full traceback)", file=sys.stderr)
        sys.exit(2)
