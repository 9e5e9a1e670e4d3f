"""Small targets trained on bundled data, seeded and cached on disk.

The cache lives in ``$MODELRECON_CACHE`` (default ``~/.cache/modelrecon``); a model is
trained once per (architecture, seed) in a few seconds and loaded afterwards."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from modelrecon import data
from modelrecon.data import cache_dir
from modelrecon.targets.base import Target, sequential_truth


def fit(model: nn.Module, X: np.ndarray, y: np.ndarray, seed: int, epochs: int = 40, lr: float = 1e-2,
        batch: int = 128) -> nn.Module:
    """Adam on cross-entropy, float64, seeded: the same seed gives the same weights."""
    g = torch.Generator().manual_seed(seed)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(Xt), generator=g).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


def _cached(key: dict, make: Callable[[], nn.Module], train: Callable[[nn.Module], nn.Module]) -> tuple[nn.Module, dict]:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{key['name']}-{name}.pt"
    model = make()
    if path.exists():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        return model.eval(), saved["info"]
    model = train(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # processes training the same model at once (a sweep) each write their own
    info = {"key": key}
    torch.save({"state": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    return model.eval(), info


def digits_mlp(spec: str, widths: list[int], act: str, seed: int) -> Target:
    from modelrecon.targets.zoo import ACTIVATIONS

    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}")
    ds = data.digits()

    def make() -> nn.Module:
        torch.manual_seed(seed)
        sizes = [64] + widths + [10]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[act]())
        return nn.Sequential(*layers).double()

    model, _ = _cached({"name": "digits-mlp", "widths": widths, "act": act, "seed": seed}, make,
                       lambda m: fit(m, ds.X_train, ds.y_train, seed))
    acc = accuracy(model, ds.X_test, ds.y_test)
    return Target(spec, model, (64,), 10, "multiclass", input_box=(0.0, 1.0),
                  truth={**sequential_truth(model), "test_accuracy": acc, "dataset": "digits"},
                  description=f"digits MLP 64 -> {' -> '.join(map(str, widths))} -> 10 ({act}), "
                              f"test accuracy {acc:.3f}")


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

    model, _ = _cached({"name": "digits-cnn", "seed": seed}, make,
                       lambda m: fit(m, ds.X_train, ds.y_train, seed, epochs=25, lr=3e-3))
    acc = accuracy(model, ds.X_test, ds.y_test)
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
    """``mnist-cnn`` / ``cifar-cnn``: trained once on the local files (DatasetMissing when absent), cached."""
    ds = data.load(dataset, root)  # raises DatasetMissing with the expected path; nothing is downloaded
    c, side = ds.input_shape[0], ds.input_shape[1]

    def make() -> nn.Module:
        torch.manual_seed(seed)
        return ImageCNN(c, side).double()

    model, _ = _cached({"name": f"{dataset}-cnn", "seed": seed, "epochs": epochs}, make,
                       lambda m: fit(m, ds.X_train, ds.y_train, seed, epochs=epochs, lr=1e-3, batch=128))
    n = min(len(ds.X_test), 2000)
    acc = accuracy(model, ds.X_test[:n], ds.y_test[:n])
    return Target(spec, model, tuple(ds.input_shape), 10, "multiclass", input_box=(0.0, 1.0),
                  truth={"family": "cnn", "test_accuracy": acc, "dataset": dataset},
                  description=f"{dataset} CNN {c}x{side}x{side} -> conv32 -> conv64 -> 128 -> 10, "
                              f"test accuracy {acc:.3f} (first {n} test images)")
