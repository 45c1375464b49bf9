"""A known-bad pair of library versions is one line naming both and the fix, before the load that would fail."""
from __future__ import annotations

import pytest
from packaging.version import Version


def test_peft_before_0_21_2_with_transformers_5_24_is_named_with_the_fix(monkeypatch):
    import dawe_merge.library_versions as versions
    from dawe_merge.errors import ConfigError

    have = {"peft": "0.21.0", "transformers": "5.24.0"}
    monkeypatch.setattr(versions, "installed_version", lambda package: Version(have[package]))
    with pytest.raises(ConfigError) as caught:
        versions.check_library_pairs("loading LoRA experts", ("peft", "transformers"))
    assert str(caught.value) == (
        "peft 0.21.0 with transformers 5.24.0 cannot load a LoRA expert of an encoder-decoder (T5ForConditionalGeneration has no "
        "_prepare_encoder_decoder_kwargs_for_generation), so loading LoRA experts would fail: pip install 'peft>=0.21.2'."
    )
    for fine in ({"peft": "0.21.2", "transformers": "5.24.0"}, {"peft": "0.21.0", "transformers": "5.23.0"}):
        have = fine
        versions.check_library_pairs("loading LoRA experts", ("peft", "transformers"))  # no error


def test_the_declared_peft_bound_excludes_the_bad_pair():
    import re
    from pathlib import Path

    from dawe_merge.library_versions import KNOWN_BAD

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for (package, below), _, _, _ in KNOWN_BAD:
        lower = re.search(rf'"{package}>=([0-9.]+)', text).group(1)
        assert Version(lower) >= Version(below), f"pyproject.toml allows {package} {lower}, which KNOWN_BAD names as failing"
