"""Datasets of docs/maths.md §2: the synthetic ODE-generated data and the MNIST-like embedding.

Every dataset is a dict of float arrays ``x_train, y_train, x_test, y_test`` with one
sample per row, generated deterministically from a seed.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import torch

from .io import stable_seed

Dataset = dict[str, np.ndarray]

SYNTHETIC_STEPS = 100
FEATURE_DIM = 25
N_CLASSES = 10


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def synthetic_targets(x: np.ndarray) -> np.ndarray:
    """Targets y = z_100 of the original study's generator (before normalisation).

    z_{n+1} = z_n + 100^{-1/2} tanh(sin(5πn/100) z_n + cos(5πn/100)), z_0 = x.
    """
    z = np.array(x, dtype=np.float64)
    for n in range(SYNTHETIC_STEPS):
        angle = 5.0 * math.pi * n / SYNTHETIC_STEPS
        z = z + SYNTHETIC_STEPS**-0.5 * np.tanh(math.sin(angle) * z + math.cos(angle))
    return z


def make_synthetic(n_train: int, n_test: int, dim: int = 10, seed: int = 0) -> Dataset:
    """The synthetic dataset: x ~ U([-1,1]^d), y from the generator, both unit-normalised."""
    rng = np.random.default_rng(stable_seed("synthetic", seed))
    x = rng.uniform(-1.0, 1.0, size=(n_train + n_test, dim))
    y = synthetic_targets(x)
    x, y = _unit_rows(x), _unit_rows(y)
    return _split(x, y, n_train)


def _split(x: np.ndarray, y: np.ndarray, n_train: int) -> Dataset:
    return {
        "x_train": x[:n_train].astype(np.float64),
        "y_train": y[:n_train].astype(np.float64),
        "x_test": x[n_train:].astype(np.float64),
        "y_test": y[n_train:].astype(np.float64),
    }


def random_feature_map(images: np.ndarray, seed: int) -> np.ndarray:
    """The fixed, seeded random embedding 28×28 → 25 of docs/maths.md §2.

    Two 1→1-channel convolutions (kernel 5 stride 2, then kernel 3 stride 2) with Gaussian
    kernels drawn from a generator seeded by ``seed``; rows are unit-normalised.
    """
    gen = torch.Generator().manual_seed(stable_seed("feature-map", seed))
    k1 = torch.randn(1, 1, 5, 5, generator=gen, dtype=torch.float64) / 5.0
    k2 = torch.randn(1, 1, 3, 3, generator=gen, dtype=torch.float64) / 3.0
    img = torch.as_tensor(images, dtype=torch.float64).reshape(-1, 1, 28, 28)
    feats = torch.nn.functional.conv2d(img, k1, stride=2)
    feats = torch.nn.functional.conv2d(feats, k2, stride=2)
    return _unit_rows(feats.reshape(len(images), -1).numpy())


def one_hot_targets(labels: np.ndarray, dim: int = FEATURE_DIM) -> np.ndarray:
    """One-hot labels in the first 10 of ``dim`` coordinates."""
    y = np.zeros((len(labels), dim))
    y[np.arange(len(labels)), labels.astype(int)] = 1.0
    return y


def _embed(images: np.ndarray, labels: np.ndarray, n_train: int, n_test: int, seed: int, name: str) -> Dataset:
    need = n_train + n_test
    if len(images) < need:
        raise ValueError(
            f"dataset {name!r} has {len(images)} samples, fewer than n_train + n_test = {need}"
        )
    rng = np.random.default_rng(stable_seed(name, "subset", seed))
    idx = rng.permutation(len(images))[:need]
    return _split(random_feature_map(images[idx], seed), one_hot_targets(labels[idx]), n_train)


def make_digits(n_train: int, n_test: int, seed: int = 0) -> Dataset:
    """Offline default: scikit-learn's 8×8 digits, upsampled to 28×28, then the feature map."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images / 16.0, dtype=torch.float64)[:, None]
    images = torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    return _embed(images[:, 0].numpy(), digits.target, n_train, n_test, seed, "digits")


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or .gz) of unsigned bytes; one clear error naming the file."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"MNIST file not found: {path}") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"corrupt MNIST file {path}: {exc}") from exc
    if len(raw) < 4:
        raise ValueError(f"corrupt MNIST file {path}: shorter than the 4-byte IDX header")
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08 or ndim == 0:
        raise ValueError(f"corrupt MNIST file {path}: not an unsigned-byte IDX file")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"corrupt MNIST file {path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise ValueError(
            f"corrupt MNIST file {path}: header says shape {shape}, "
            f"found {len(raw) - header} data bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"MNIST file not found: {directory / stem} (or {stem}.gz)")


def make_mnist(path: str | Path, n_train: int, n_test: int, seed: int = 0) -> Dataset:
    """Real MNIST from the four standard IDX files in ``path``, through the feature map."""
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {directory}")
    parts = {key: read_idx(_find_idx(directory, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        imgs, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        if imgs.ndim != 3 or imgs.shape[1:] != (28, 28) or len(imgs) != len(labels):
            raise ValueError(
                f"MNIST {split} files in {directory} disagree: images {imgs.shape}, labels {labels.shape}"
            )
    if len(parts["train_images"]) < n_train or len(parts["test_images"]) < n_test:
        raise ValueError(f"MNIST in {directory} has fewer samples than n_train={n_train} / n_test={n_test}")
    train = _embed(parts["train_images"] / 255.0, parts["train_labels"], n_train, 0, seed, "mnist-train")
    test = _embed(parts["test_images"] / 255.0, parts["test_labels"], n_test, 0, seed, "mnist-test")
    return {"x_train": train["x_train"], "y_train": train["y_train"],
            "x_test": test["x_train"], "y_test": test["y_train"]}


def make_dataset(spec: dict, seed: int = 0) -> Dataset:
    """Build the dataset described by one ``datasets:`` entry of the config."""
    kind = spec["kind"]
    if kind == "synthetic":
        return make_synthetic(spec["n_train"], spec["n_test"], spec.get("dim", 10), seed)
    if kind == "digits":
        return make_digits(spec["n_train"], spec["n_test"], seed)
    if kind == "mnist":
        return make_mnist(spec["path"], spec["n_train"], spec["n_test"], seed)
    raise ValueError(f"unknown dataset kind {kind!r}; expected synthetic, digits or mnist")
