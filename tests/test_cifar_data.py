"""CIFAR-10 python batches and archive fetching: reading, subsets, and one clear error
naming the file for a missing, truncated, malformed or wrong-checksum file (no network)."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from resnet_scaling import dataset_files
from resnet_scaling.training import data, fetch


def write_cifar_batch(path, n, seed):
    """A batch file in the official format: a pickled dict of uint8 (n, 3072) data and labels."""
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, size=n).tolist(), b"batch_label": b"generated"}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def write_cifar(folder, n_per_batch=6, n_test=5):
    """The five training batches and the test batch, generated."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: write_cifar_batch(folder / name, n_per_batch, i)
             for i, name in enumerate(dataset_files.CIFAR_TRAIN_FILES)}
    files[dataset_files.CIFAR_TEST_FILE] = write_cifar_batch(folder / dataset_files.CIFAR_TEST_FILE, n_test, 99)
    return files


def test_batches_are_read_in_channel_first_layout(tmp_path):
    files = write_cifar(tmp_path)
    images, labels = data.read_cifar_batch(tmp_path / "data_batch_2")
    raw = files["data_batch_2"]
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.uint8
    # the 3072 bytes of a row are the red, then green, then blue 32 × 32 planes
    assert np.array_equal(images[1, 2].ravel(), raw[b"data"][1, 2048:])
    assert labels.tolist() == raw[b"labels"]


def test_full_dataset_and_seeded_subsets(tmp_path):
    files = write_cifar(tmp_path / "cifar-10-batches-py")
    full = data.make_dataset({"kind": "cifar10", "path": str(tmp_path), "n_train": 30, "n_test": 5})
    expected = np.concatenate([files[n][b"data"] for n in dataset_files.CIFAR_TRAIN_FILES]).reshape(-1, 3, 32, 32)
    assert np.array_equal(full["x_train"], expected) and full["y_test"].dtype == np.int64
    a = data.make_cifar10(tmp_path, 10, 3, seed=1)
    b = data.make_cifar10(tmp_path, 10, 3, seed=1)
    c = data.make_cifar10(tmp_path, 10, 3, seed=2)
    assert a["x_train"].shape == (10, 3, 32, 32) and np.array_equal(a["x_train"], b["x_train"])
    assert not np.array_equal(a["x_train"], c["x_train"])
    with pytest.raises(ValueError, match="fewer than the 31"):
        data.make_cifar10(tmp_path, 31, 3)


def test_missing_truncated_and_malformed_files_are_named(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        data.make_cifar10(tmp_path, 10, 3)
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt CIFAR-10 file .*test_batch"):
        data.make_cifar10(tmp_path, 10, 3)
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match="corrupt CIFAR-10 file .*test_batch.*expected uint8"):
        data.make_cifar10(tmp_path, 10, 3)
    with pytest.raises(FileNotFoundError, match="CIFAR-10 directory not found"):
        data.make_cifar10(tmp_path / "nowhere", 10, 3)


def test_pickles_with_other_objects_are_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": io.BytesIO(b"x"), b"labels": []}))
    with pytest.raises(ValueError, match="corrupt CIFAR-10 file .*data_batch_1"):
        data.read_cifar_batch(path)


def _tarball(folder, source):
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    return archive


def test_checksums_are_verified_and_mismatches_named(tmp_path):
    path = tmp_path / "archive.bin"
    path.write_bytes(b"some bytes")
    good = {"url": "https://example.org/archive.bin", "sha256": hashlib.sha256(b"some bytes").hexdigest()}
    fetch.verify_checksum(path, good)
    fetch.verify_checksum(path, {"url": good["url"], "md5": hashlib.md5(b"some bytes").hexdigest()})
    with pytest.raises(ValueError, match="checksum mismatch for .*archive.bin: md5"):
        fetch.verify_checksum(path, {"url": good["url"], "md5": "0" * 32})
    with pytest.raises(ValueError, match="no sha256 or md5"):
        fetch.verify_checksum(path, {"url": good["url"]})


def test_an_archive_already_in_the_folder_is_verified_and_unpacked(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "download", lambda *a, **k: pytest.fail("must not download"))
    write_cifar(tmp_path / "src" / "inner")
    target = tmp_path / "cifar"
    target.mkdir()
    archive = _tarball(target, tmp_path / "src" / "inner")
    entry = {"url": "https://example.org/cifar-10-python.tar.gz", "md5": fetch.file_digest(archive, "md5")}
    spec = {"kind": "cifar10", "path": str(target), "n_train": 30, "n_test": 5, "download": True, "urls": [entry]}
    ds = data.make_dataset(spec)
    assert ds["x_train"].shape == (30, 3, 32, 32)
    assert (target / "data_batch_5").exists()
    for name in dataset_files.CIFAR_TRAIN_FILES:
        (target / name).unlink()
    archive.write_bytes(archive.read_bytes()[:-50])
    with pytest.raises(ValueError, match="checksum mismatch for .*cifar-10-python.tar.gz"):
        data.make_dataset(spec)


def test_download_without_urls_names_the_folder(tmp_path):
    spec = {"kind": "mnist", "path": str(tmp_path / "mnist"), "n_train": 10, "n_test": 5, "download": True}
    with pytest.raises(ValueError, match="mnist is incomplete .*no urls"):
        data.make_dataset(spec)
