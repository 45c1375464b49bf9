#!/usr/bin/env bash
# Adapt a method from scratch in a run folder, then `test` its last checkpoint (the Makefile's adaptive runs):
#   scripts/adapt_then_test.sh <run dir> <--config and other options of both stages...>
# Both stages get the same options, so `test` rebuilds exactly the model `fit` adapted.
set -euo pipefail
run=$1
shift
py=${PY:-.venv/bin/python}
rm -rf "$run"
"$py" main.py fit "$@" --trainer.default_root_dir "$run"
"$py" main.py test "$@" --trainer.default_root_dir "$run" --ckpt_path "$run/checkpoints/last.ckpt"
