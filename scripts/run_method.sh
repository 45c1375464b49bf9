#!/usr/bin/env bash
# Run one method on a benchmark the way the Makefile's targets do:
#   scripts/run_method.sh <method> <run dir> <benchmark --config and data options...> [-- <options after the method config>]
# Adaptive methods (adamerging_*, dawe_*) adapt with `fit` from scratch in <run dir>, then `test` its last
# checkpoint; the others only `test`. DAWE_FEATURES, if set, is a feature-extractor config stacked for DAWE.
set -euo pipefail
method=$1 run=$2
shift 2
before=() after=()
while (($#)); do [[ $1 == -- ]] && { shift; after=("$@"); break; }; before+=("$1"); shift; done
py=${PY:-.venv/bin/python}
config=(--config "configs/text/$method.yaml")
if [[ $method == dawe* && -n ${DAWE_FEATURES:-} ]]; then config+=(--config "$DAWE_FEATURES"); fi
if [[ $method == adamerging* || $method == dawe* ]]; then
  rm -rf "$run"
  "$py" main.py fit "${before[@]}" "${config[@]}" "${after[@]}" --trainer.default_root_dir "$run"
  "$py" main.py test "${before[@]}" "${config[@]}" "${after[@]}" --trainer.default_root_dir "$run" --ckpt_path "$run/checkpoints/last.ckpt"
else
  "$py" main.py test "${before[@]}" "${config[@]}" "${after[@]}"
fi
