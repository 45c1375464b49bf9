"""The recipe an export carries: the run's resolved config as an `export` config, so that
`merge-cli export --config recipe.yaml --export_dir <folder>` makes the same folder again from any working folder."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

# the config blocks that decide the merge; the rest (subcommand flags, verbosity, hub push) does not belong in a recipe
RECIPE_KEYS = ("seed_everything", "trainer", "model", "data", "features", "results_dir", "ckpt_path", "export_dir", "export_task_vector_dtype")


def recipe_text(dumped_config: str, command: str, last_checkpoint: str | None = None) -> str:
    """The recipe.yaml text of a run whose resolved config `dumped_config` (YAML) is.

    Paths that exist are written absolute. `last_checkpoint` is given after `fit` only: the run's last checkpoint (it
    holds the state exported, the selected one under best_validation) becomes the recipe's ckpt_path, or none when the
    fit saved no such file (""). Other subcommands keep the config's own ckpt_path.
    """
    dumped = yaml.safe_load(dumped_config)
    recipe = {key: absolute_paths(dumped[key]) for key in RECIPE_KEYS if key in dumped}
    if last_checkpoint is not None:
        recipe["ckpt_path"] = str(Path(last_checkpoint).resolve()) if last_checkpoint and Path(last_checkpoint).is_file() else None
    header = ["# Recipe of this export: merge-cli export --config recipe.yaml --export_dir <folder>", f"# written by: {command}",
              f"# working folder: {Path.cwd()}"]  # fmt: skip
    return "\n".join(header) + "\n" + yaml.safe_dump(recipe, sort_keys=False)


def absolute_paths(value):
    """Every string in a config that names an existing relative path, made absolute."""
    if isinstance(value, dict):
        return {k: absolute_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [absolute_paths(v) for v in value]
    if isinstance(value, str) and value and not os.path.isabs(value) and "/" in value and Path(value).exists():
        return str(Path(value).resolve())
    return value
