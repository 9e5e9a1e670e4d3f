import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory):
    """Trained targets go to a per-session cache unless the user set one."""
    if "MODELRECON_CACHE" not in os.environ:
        os.environ["MODELRECON_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A fresh cache and a function that puts a tiny random MNIST into it (split sizes, seed): no fetch."""
    import numpy as np

    from modelrecon import data

    monkeypatch.delenv("MODELRECON_MNIST", raising=False)
    monkeypatch.setenv("MODELRECON_CACHE", str(tmp_path / "cache"))

    def make(train: int, valid: int, test: int, seed: int) -> None:
        folder = data.mnist_cache()
        folder.mkdir(parents=True)
        rng = np.random.default_rng(seed)
        for part, n in (("train", train), ("valid", valid), ("test", test)):
            np.save(folder / f"X_{part}.npy", rng.random((n, 784), dtype=np.float32))
            np.save(folder / f"y_{part}.npy", rng.integers(0, 10, n))

    return make
