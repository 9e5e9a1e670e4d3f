"""Small targets trained on bundled data, seeded and cached on disk.

The cache lives in ``$MODELRECON_CACHE`` (default ``~/.cache/modelrecon``); a model is
trained once per (architecture, seed) in a few seconds and loaded afterwards."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
from torch import nn

from modelrecon import data
from modelrecon.data import cache_dir
from modelrecon.targets.base import Target, sequential_truth


def fit(model: nn.Module, X: np.ndarray, y: np.ndarray, seed: int, epochs: int = 40, lr: float = 1e-2,
        batch: int = 128, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Adam on cross-entropy, seeded: the same seed gives the same weights.  ``dtype=torch.float32``
    trains faster (MNIST); the model is returned in float64 either way."""
    g = torch.Generator().manual_seed(seed)
    Xt, yt = torch.as_tensor(X, dtype=dtype), torch.as_tensor(y)
    model.to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(Xt), generator=g).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            opt.step()
    return model.double().eval()


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        hits = [(model(torch.as_tensor(xb)).argmax(1).numpy() == yb) for xb, yb in
                zip(np.array_split(X, max(1, len(X) // 2000)), np.array_split(y, max(1, len(X) // 2000)))]
    return float(np.concatenate(hits).mean())


def _cached(key: dict, make: Callable[[], nn.Module], train: Callable[[nn.Module], nn.Module],
            measure: Callable[[nn.Module], float]) -> tuple[nn.Module, float]:
    """The model for ``key`` from the cache, else trained and cached; with its test accuracy
    (measured once, when trained, and kept in the cache file)."""
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{key['name']}-{name}.pt"
    model = make()
    if path.exists():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        model.eval()
        acc = saved["info"].get("test_accuracy")
        return model, measure(model) if acc is None else float(acc)
    with _threads(min(TRAIN_THREADS, torch.get_num_threads())):
        model = train(model)
    acc = measure(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # processes training the same model at once (a sweep) each write their own
    torch.save({"state": model.state_dict(), "info": {"key": key, "test_accuracy": acc}}, tmp)
    tmp.replace(path)
    return model, acc


# Training runs on at most this many threads (the machine may be shared); on the same thread
# count the same seed gives the same weights.
TRAIN_THREADS = 2


@contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# How each dataset's MLPs are trained: (input dimension, fit options).  MNIST trains in float32
# (a 784-128-10 network: about 20 s per epoch on 2 shared cores).
MLP_RECIPES: dict[str, tuple[int, dict]] = {
    "digits": (64, {"epochs": 40, "lr": 1e-2}),
    "mnist": (784, {"lr": 1e-3, "dtype": torch.float32}),
}


def trained_mlp(spec: str, dataset: str, widths: list[int], act: str, seed: int, epochs: int | None = None) -> Target:
    """An MLP d -> widths -> 10 trained on ``dataset`` (digits or mnist), seeded and cached."""
    from modelrecon.targets.zoo import ACTIVATIONS

    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}")
    d, options = MLP_RECIPES[dataset]
    options = {**options, **({"epochs": epochs} if epochs is not None else {})}
    ds = functools.cache(lambda: data.load(dataset).flat())  # a cached model needs no data

    def make() -> nn.Module:
        torch.manual_seed(seed)
        sizes = [d] + widths + [10]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[act]())
        return nn.Sequential(*layers).double()

    key = {"name": f"{dataset}-mlp", "widths": widths, "act": act, "seed": seed}
    if dataset != "digits":  # the digits key predates the recipe table: kept so its cache stays valid
        key["epochs"] = options["epochs"]
    model, acc = _cached(key, make, lambda m: fit(m, ds().X_train, ds().y_train, seed, **options),
                         lambda m: accuracy(m, ds().X_test, ds().y_test))
    return Target(spec, model, (d,), 10, "multiclass", input_box=(0.0, 1.0),
                  truth={**sequential_truth(model), "test_accuracy": acc, "dataset": dataset},
                  description=f"{dataset} MLP {d} -> {' -> '.join(map(str, widths))} -> 10 ({act}), "
                              f"test accuracy {acc:.4f}")


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def digits_cnn(spec: str, seed: int) -> Target:
    ds = data.digits(image=True)

    def make() -> nn.Module:
        torch.manual_seed(seed)
        return DigitsCNN().double()

    model, acc = _cached({"name": "digits-cnn", "seed": seed}, make,
                         lambda m: fit(m, ds.X_train, ds.y_train, seed, epochs=25, lr=3e-3),
                         lambda m: accuracy(m, ds.X_test, ds.y_test))
    return Target(spec, model, (1, 8, 8), 10, "multiclass", input_box=(0.0, 1.0),
                  truth={"family": "cnn", "test_accuracy": acc, "dataset": "digits"},
                  description=f"digits CNN 1x8x8 -> conv16 -> conv32 -> pool -> 64 -> 10, test accuracy {acc:.3f}")


class ImageCNN(nn.Module):
    """A small CNN for 28x28 or 32x32 images: two conv/pool blocks and a hidden layer."""

    def __init__(self, channels: int, side: int, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * (side // 4) ** 2, 128), nn.ReLU(),
                                  nn.Linear(128, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def image_cnn(spec: str, dataset: str, seed: int, epochs: int, root: str | None = None) -> Target:
    """``mnist-cnn`` / ``cifar-cnn``: trained once (float32, 2 threads) on the dataset (DatasetMissing,
    naming how to get it, when absent), cached with its accuracy on the whole test split."""
    ds = functools.cache(lambda: data.load(dataset, root))
    c, side = {"mnist": (1, 28), "cifar10": (3, 32)}[dataset]

    def make() -> nn.Module:
        torch.manual_seed(seed)
        return ImageCNN(c, side).double()

    model, acc = _cached({"name": f"{dataset}-cnn", "seed": seed, "epochs": epochs}, make,
                         lambda m: fit(m, ds().X_train, ds().y_train, seed, epochs=epochs, lr=1e-3, batch=128,
                                       dtype=torch.float32),
                         lambda m: accuracy(m, ds().X_test, ds().y_test))
    return Target(spec, model, (c, side, side), 10, "multiclass", input_box=(0.0, 1.0),
                  truth={"family": "cnn", "test_accuracy": acc, "dataset": dataset},
                  description=f"{dataset} CNN {c}x{side}x{side} -> conv32 -> conv64 -> 128 -> 10, "
                              f"test accuracy {acc:.4f}")
