"""Datasets, all offline: scikit-learn's bundled digits, MNIST and CIFAR-10 from local files,
synthetic Gaussian inputs.  Nothing is downloaded.

Every dataset comes in three disjoint seeded splits: ``train`` (what a target is trained
on), ``pool`` (unlabeled data an attacker may hold) and ``test`` (held out for metrics).
Inputs are float64 in [0, 1]; image datasets keep their (C, H, W) shape.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetMissing(FileNotFoundError):
    """The files of a local dataset are not where they were looked for."""


@dataclass
class Dataset:
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    input_box: tuple[float, float] = (0.0, 1.0)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X_train.shape[1:])

    def flat(self) -> "Dataset":
        """The same data with each input flattened to a vector."""
        f = lambda a: a.reshape(len(a), -1)  # noqa: E731
        return Dataset(self.name, f(self.X_train), self.y_train, f(self.X_pool), self.y_pool, f(self.X_test),
                       self.y_test, self.n_classes, self.input_box)


def _split(name: str, X: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0,
           fractions: tuple[float, float] = (0.6, 0.2)) -> Dataset:
    order = np.random.default_rng(seed).permutation(len(X))
    a = int(fractions[0] * len(X))
    b = a + int(fractions[1] * len(X))
    tr, po, te = order[:a], order[a:b], order[b:]
    return Dataset(name, X[tr], y[tr], X[po], y[po], X[te], y[te], n_classes)


def digits(image: bool = False) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, bundled with the package), scaled to [0, 1].

    ``image=True`` keeps the (1, 8, 8) shape, otherwise inputs are 64-vectors."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.images.astype(np.float64) / 16.0
    X = X[:, None] if image else X.reshape(len(X), -1)
    return _split("digits", X, d.target.astype(np.int64), 10)


def _data_dir(name: str, root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get(f"MODELRECON_{name.upper().replace('-', '')}")
    if env:
        return Path(env)
    base = os.environ.get("MODELRECON_DATA", str(Path.home() / ".modelrecon" / "data"))
    return Path(base) / name


def _find(directory: Path, names: list[str], dataset: str, env: str) -> list[Path]:
    found, missing = [], []
    for n in names:
        for cand in (directory / n, directory / (n + ".gz")):
            if cand.exists():
                found.append(cand)
                break
        else:
            missing.append(n)
    if missing:
        raise DatasetMissing(
            f"{dataset} files not found in {directory}: missing {', '.join(missing)}. modelrecon downloads nothing: "
            f"put the standard files there (optionally .gz), or point --data-dir or ${env} at the folder holding them."
        )
    return found


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def mnist(root: str | Path | None = None) -> Dataset:
    """MNIST from the four IDX files (``$MODELRECON_MNIST`` or ``~/.modelrecon/data/mnist``)."""
    directory = _data_dir("mnist", root)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    tri, trl, tei, tel = (_read_idx(p) for p in _find(directory, names, "MNIST", "MODELRECON_MNIST"))
    X = np.concatenate([tri, tei]).astype(np.float64)[:, None] / 255.0
    y = np.concatenate([trl, tel]).astype(np.int64)
    n_train = len(tri)
    rest = np.random.default_rng(0).permutation(n_train)
    cut = int(0.8 * n_train)
    tr, po = rest[:cut], rest[cut:]
    return Dataset("mnist", X[tr], y[tr], X[po], y[po], X[n_train:], y[n_train:], 10)


def cifar10(root: str | Path | None = None) -> Dataset:
    """CIFAR-10 from the python pickles (``cifar-10-batches-py``; ``$MODELRECON_CIFAR10``)."""
    directory = _data_dir("cifar10", root)
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    paths = _find(directory, names, "CIFAR-10", "MODELRECON_CIFAR10")
    Xs, ys = [], []
    for p in paths:
        with open(p, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        Xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    X = np.concatenate(Xs).astype(np.float64) / 255.0
    y = np.concatenate(ys)
    n_train = len(X) - len(ys[-1])
    rest = np.random.default_rng(0).permutation(n_train)
    cut = int(0.8 * n_train)
    tr, po = rest[:cut], rest[cut:]
    return Dataset("cifar10", X[tr], y[tr], X[po], y[po], X[n_train:], y[n_train:], 10)


def gaussian(n: int, shape: tuple[int, ...] | int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """n synthetic inputs with i.i.d. N(0, scale^2) entries, float64."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return np.random.default_rng(seed).normal(0.0, scale, size=(n, *shape))


LOADERS = {"digits": digits, "mnist": mnist, "cifar10": cifar10}


def load(name: str, root: str | Path | None = None) -> Dataset:
    """A dataset by name: digits, mnist, cifar10."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name]() if name == "digits" else LOADERS[name](root)
