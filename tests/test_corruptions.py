"""Each corruption: shape, dtype and range kept, deterministic under a seed, visibly different, monotone in severity."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image

from dawe_merge.families.vision.corruptions import CORRUPTIONS, SEVERITIES, corrupt


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photograph shipped with scikit-learn, shrunk so the tests stay fast."""
    return np.asarray(Image.fromarray(load_sample_image("china.jpg")).resize((96, 64)), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_keeps_format_is_seeded_and_grows_with_severity(name, photo):
    damage = []
    for severity in SEVERITIES:
        out = corrupt(photo, name, severity, seed=7)
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert out.min() >= 0 and out.max() <= 255
        np.testing.assert_array_equal(out, corrupt(photo, name, severity, seed=7))  # same seed, same image
        damage.append(float(np.abs(out.astype(float) - photo.astype(float)).mean()))
    assert damage[0] > 0.5, f"{name} at severity 1 barely changes the image"
    assert all(b >= a for a, b in zip(damage, damage[1:])), f"{name}: damage {damage} is not monotone in severity"
    assert damage[-1] > damage[0]


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_works_on_greyscale_and_pil_input(name, photo):
    grey = np.asarray(Image.fromarray(photo).convert("L"), dtype=np.uint8)
    out = corrupt(Image.fromarray(grey), name, 3, seed=1)
    assert out.shape == grey.shape and out.dtype == np.uint8


def test_random_corruptions_depend_on_the_seed_and_bad_arguments_are_refused(photo):
    for name in ("gaussian_noise", "impulse_noise", "spatter", "motion_blur"):
        assert not np.array_equal(corrupt(photo, name, 3, seed=1), corrupt(photo, name, 3, seed=2)), name
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt(photo, "contrast", 6, seed=0)
    with pytest.raises(ValueError, match="Unknown corruption 'fog'"):
        corrupt(photo, "fog", 1, seed=0)
