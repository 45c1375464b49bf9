"""The export's recipe.yaml: the decisive config blocks only, existing relative paths made absolute, and after `fit`
the run's last checkpoint (or none when it is missing)."""
from __future__ import annotations

import yaml

from dawe_merge.export.recipe import recipe_text


def test_recipe_keeps_the_merge_blocks_and_makes_existing_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experts" / "a").mkdir(parents=True)
    dumped = yaml.safe_dump({
        "seed_everything": 3, "verbose": True, "export_push_to_hub": "me/repo",
        "model": {"init_args": {"experts_dir": "experts/a", "missing": "not/there", "name": "plain"}},
    })  # fmt: skip
    recipe = yaml.safe_load(recipe_text(dumped, "merge-cli test --config x.yaml"))
    assert set(recipe) == {"seed_everything", "model"}  # subcommand flags and the hub push are not the merge
    assert recipe["model"]["init_args"] == {"experts_dir": str((tmp_path / "experts" / "a").resolve()), "missing": "not/there", "name": "plain"}
    assert "ckpt_path" not in recipe  # not a fit: the config's own ckpt_path key (absent here) stands


def test_after_fit_the_recipe_names_the_last_checkpoint_or_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    last = tmp_path / "run" / "last.ckpt"
    dumped = yaml.safe_dump({"ckpt_path": None, "trainer": {"max_steps": 5}})
    assert yaml.safe_load(recipe_text(dumped, "c", "run/last.ckpt"))["ckpt_path"] is None  # no such file yet
    last.parent.mkdir()
    last.write_bytes(b"x")
    text = recipe_text(dumped, "merge-cli fit --config x.yaml", "run/last.ckpt")
    assert yaml.safe_load(text)["ckpt_path"] == str(last.resolve())
    assert text.startswith("# Recipe of this export") and "# written by: merge-cli fit --config x.yaml" in text
