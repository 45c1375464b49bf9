#!/usr/bin/env bash
# Fine-tune one task's expert the way the Makefile's targets do:
#   scripts/fit_expert.sh <task> <run dir> <benchmark --config and data options...> [-- <options after the expert config>]
# Runs `fit` with configs/methods/expert.yaml; a run that was killed resumes from <run dir>'s last checkpoint.
set -euo pipefail
task=$1 run=$2
shift 2
before=() after=()
while (($#)); do [[ $1 == -- ]] && { shift; after=("$@"); break; }; before+=("$1"); shift; done
py=${PY:-.venv/bin/python}
resume=()
if [[ -f $run/checkpoints/last.ckpt ]]; then resume=(--ckpt_path "$run/checkpoints/last.ckpt"); fi
"$py" main.py fit "${before[@]}" --config configs/methods/expert.yaml --model.init_args.task "$task" "${after[@]}" \
  --trainer.default_root_dir "$run" "${resume[@]}"
# the expert is saved where the benchmark reads it: the run's checkpoints only served a resume of this fine-tuning
rm -rf "$run/checkpoints"
