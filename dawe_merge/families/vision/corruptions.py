"""Image corruptions for the out-of-distribution experiment, in numpy and Pillow only.

Each takes an RGB or greyscale image as a uint8 array (H, W[, C]) or a PIL image, a severity from 1 to
5, and a numpy Generator, and returns a uint8 array of the same shape. Severity parameters follow the
spirit of ImageNet-C (Hendrycks & Dietterich, 2019); they are not its code. Randomness comes only from
the generator, so a seeded run corrupts the same image the same way every time, and each severity
uses the same random draws as the one below it, scaled up, so damage grows with severity.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

SEVERITIES = (1, 2, 3, 4, 5)


def _as_float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _level(values: tuple, severity: int):
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}.")
    return values[severity - 1]


def gaussian_noise(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = _as_float(image)
    return _to_uint8(x + _level((0.08, 0.12, 0.18, 0.26, 0.38), severity) * rng.standard_normal(x.shape))


def impulse_noise(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: a share of pixels (per channel) set to black or white."""
    x = _as_float(image)
    amount = _level((0.03, 0.06, 0.09, 0.17, 0.27), severity)
    draw, salt = rng.random(x.shape), rng.random(x.shape) < 0.5
    hit = draw < amount
    return _to_uint8(np.where(hit, salt.astype(np.float64), x))


def motion_blur(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The mean of the image shifted along a random direction, over a length that grows with severity."""
    x = _as_float(image)
    length = _level((3, 5, 8, 11, 15), severity) * max(1, min(x.shape[:2]) // 32)
    angle = rng.uniform(0.0, np.pi)
    h, w = x.shape[:2]
    pad = length + 1
    padded = np.pad(x, ((pad, pad), (pad, pad)) + ((0, 0),) * (x.ndim - 2), mode="edge")
    total = np.zeros_like(x)
    for k in range(length):
        dy, dx = int(round(k * np.sin(angle))), int(round(k * np.cos(angle)))
        total += padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return _to_uint8(total / length)


def pixelate(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-downsample, then nearest-neighbour upsample back to the original size."""
    array = np.asarray(image, dtype=np.uint8)
    factor = _level((0.6, 0.5, 0.4, 0.3, 0.25), severity)
    h, w = array.shape[:2]
    small = Image.fromarray(array).resize((max(1, int(w * factor)), max(1, int(h * factor))), Image.BOX)
    return np.asarray(small.resize((w, h), Image.NEAREST), dtype=np.uint8)


def contrast(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Pull every pixel towards the image's mean."""
    x = _as_float(image)
    keep = _level((0.4, 0.3, 0.2, 0.1, 0.05), severity)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return _to_uint8((x - mean) * keep + mean)


def jpeg(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    array = np.asarray(image, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=_level((25, 18, 15, 10, 7), severity))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.uint8)
    return decoded.reshape(array.shape)


def spatter(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Opaque dark blobs (mud-like drops) scattered over the image; more and larger with severity."""
    x = _as_float(image)
    h, w = x.shape[:2]
    count, radius = _level((4, 8, 12, 18, 26), severity), _level((0.04, 0.05, 0.06, 0.07, 0.08), severity)
    centres, sizes = rng.random((26, 2)), 0.5 + rng.random(26)  # the same draws at every severity: a prefix of them
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), dtype=bool)
    for (cy, cx), size in zip(centres[:count], sizes[:count]):
        r = radius * size * min(h, w)
        mask |= (yy - cy * h) ** 2 + (xx - cx * w) ** 2 <= r * r
    colour = 0.25 if x.ndim == 2 else np.array([0.3, 0.22, 0.15])[: x.shape[-1]]
    return _to_uint8(np.where(mask[..., None] if x.ndim == 3 else mask, colour, x))


CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "gaussian_noise": gaussian_noise,
    "impulse_noise": impulse_noise,
    "motion_blur": motion_blur,
    "pixelate": pixelate,
    "contrast": contrast,
    "jpeg": jpeg,
    "spatter": spatter,
}


def corrupt(image, name: str, severity: int, seed: int) -> np.ndarray:
    """`name` at `severity` with its own generator seeded by `seed` (e.g. the example's index)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}.")
    return CORRUPTIONS[name](image, severity, np.random.default_rng(seed))


def save_grid(images: dict[str, np.ndarray], severity: int, path, seed: int = 0) -> None:
    """One row per example image: the clean image, then each corruption at `severity` (a PNG for a quick look)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["clean", *CORRUPTIONS]
    fig, axes = plt.subplots(len(images), len(columns), figsize=(1.5 * len(columns), 1.6 * len(images)), squeeze=False)
    for row, (label, image) in enumerate(images.items()):
        for col, name in enumerate(columns):
            shown = np.asarray(image) if name == "clean" else corrupt(image, name, severity, seed)
            axes[row][col].imshow(shown, cmap="gray", vmin=0, vmax=255)
            axes[row][col].set_xticks([])
            axes[row][col].set_yticks([])
            if row == 0:
                axes[row][col].set_title(name.replace("_", " "), fontsize=8)
        axes[row][0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"corruptions at severity {severity}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
