"""Datasets of docs/maths.md §2: the synthetic ODE-generated data, the nonlinear teacher-flow
data, the MNIST-like embedding and the CIFAR-10 images of the convolutional experiment (docs/references.md).

Every dataset is a dict of arrays ``x_train, y_train, x_test, y_test`` with one sample per
row, generated deterministically from a seed: floats for the fully connected networks,
the raw uint8 images (N, 3, 32, 32) and integer labels for CIFAR-10.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from ..config import FEATURE_DIM
from ..dataset_files import CIFAR_TEST_FILE, CIFAR_TRAIN_FILES, IDX_FILES, cifar_folder
from ..io import read_npz, stable_seed
from .fetch import fetch_dataset

Dataset = dict[str, np.ndarray]

SYNTHETIC_STEPS = 100
NONLINEAR_STEPS = 100
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


def nonlinear_teacher(dim: int, seed: int, radius: float, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """The fixed random field of the nonlinear data (docs/maths.md §2): W with entries
    N(0, (gain/(radius √d))²), so that (W x)_i has standard deviation gain/√d for an input of norm
    radius (O(1): tanh is used beyond its linear range), and c with entries N(0, 1); drawn from
    a generator of their own, so that they do not depend on the number of samples."""
    rng = np.random.default_rng(stable_seed("nonlinear", "teacher", seed))
    W = rng.standard_normal((dim, dim)) * (gain / (radius * math.sqrt(dim)))
    c = rng.standard_normal(dim)
    return W, c


def nonlinear_targets(x: np.ndarray, W: np.ndarray, c: np.ndarray, speed: float) -> np.ndarray:
    """y = z_100 of the teacher flow z_{n+1} = z_n + (speed/100) tanh(W z_n + c), z_0 = x (rows)."""
    z = np.array(x, dtype=np.float64)
    for _ in range(NONLINEAR_STEPS):
        z = z + (speed / NONLINEAR_STEPS) * np.tanh(z @ W.T + c)
    return z


def make_nonlinear(n_train: int, n_test: int, dim: int = 10, seed: int = 0, radius: float = 3.0,
                   gain: float = 3.0, speed: float = 1.0) -> Dataset:
    """Data that a residual network cannot fit without its nonlinearity: x uniform on the
    sphere of radius ``radius`` in the direction of U([-1,1]^d), y the end point of a fixed
    random tanh flow started at x (:func:`nonlinear_targets`); targets are not normalised."""
    W, c = nonlinear_teacher(dim, seed, radius, gain)
    rng = np.random.default_rng(stable_seed("nonlinear", "inputs", seed))
    x = radius * _unit_rows(rng.uniform(-1.0, 1.0, size=(n_train + n_test, dim)))
    return _split(x, nonlinear_targets(x, W, c, speed), n_train)


def make_gaussian(n_train: int, n_test: int, dim: int = 16, seed: int = 0) -> Dataset:
    """Inputs and targets with independent standard normal entries, not normalised: the
    synthetic data of Marion et al. (2024, Fig. 1)."""
    rng = np.random.default_rng(stable_seed("gaussian", seed))
    x = rng.standard_normal((n_train + n_test, dim))
    y = rng.standard_normal((n_train + n_test, dim))
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
    labels = np.asarray(labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise ValueError(f"labels outside 0..{N_CLASSES - 1} (found {labels.min()}..{labels.max()})")
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


def mnist_files(directory: str | Path) -> dict[str, Path]:
    """The four IDX files of an MNIST folder (raw, or ``.gz`` where the raw file is absent);
    a missing one names itself."""
    directory = Path(directory)
    return {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}


def _check_mnist_array(path: Path, key: str, array: np.ndarray) -> None:
    """What the file's name promises: images N × 28 × 28 (IDX magic 0x00000803) or labels N
    (0x00000801) with digits 0–9; one sentence naming the file otherwise."""
    if key.endswith("images"):
        if array.ndim != 3 or array.shape[1:] != (28, 28):
            raise ValueError(
                f"MNIST file {path} holds an array of shape {array.shape}; an image file holds "
                "N × 28 × 28 bytes (IDX magic 0x00000803): is it the right file?"
            )
        return
    if array.ndim != 1:
        raise ValueError(
            f"MNIST file {path} holds an array of shape {array.shape}; a label file holds N bytes "
            "(IDX magic 0x00000801): is it the right file?"
        )
    outside = int(np.count_nonzero(array >= N_CLASSES))
    if outside:
        raise ValueError(
            f"MNIST file {path} has {outside} label(s) outside the digits 0..{N_CLASSES - 1} "
            f"(largest {int(array.max())}): not an MNIST label file"
        )


def read_mnist(directory: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of an MNIST folder, each checked against its name (shape, labels 0–9)
    and each split's images against its labels; one sentence naming the first bad file."""
    files = mnist_files(directory)
    parts = {}
    for key, path in files.items():
        parts[key] = read_idx(path)
        _check_mnist_array(path, key, parts[key])
    for split in ("train", "test"):
        images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        if len(images) != len(labels):
            raise ValueError(
                f"MNIST file {files[f'{split}_labels']} has {len(labels)} labels for the "
                f"{len(images)} images of {files[f'{split}_images']}: the two files do not belong together"
            )
    return parts


def make_mnist(path: str | Path, n_train: int, n_test: int, seed: int = 0) -> Dataset:
    """Real MNIST from the four standard IDX files in ``path``, through the feature map."""
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {directory}")
    parts = read_mnist(directory)
    if len(parts["train_images"]) < n_train or len(parts["test_images"]) < n_test:
        raise ValueError(f"MNIST in {directory} has fewer samples than n_train={n_train} / n_test={n_test}")
    train = _embed(parts["train_images"] / 255.0, parts["train_labels"], n_train, 0, seed, "mnist-train")
    test = _embed(parts["test_images"] / 255.0, parts["test_labels"], n_test, 0, seed, "mnist-test")
    return {"x_train": train["x_train"], "y_train": train["y_train"],
            "x_test": test["x_train"], "y_test": test["y_train"]}


CIFAR_SHAPE = (3, 32, 32)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds (dicts, lists, bytes, NumPy arrays)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images (N, 3, 32, 32) uint8 and labels (N,); one clear
    error naming the file when it is missing, truncated or not a batch."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
    except FileNotFoundError:
        raise FileNotFoundError(f"CIFAR-10 file not found: {path}") from None
    except Exception as exc:  # EOF, unpickling, memory errors all mean a damaged file
        raise ValueError(f"corrupt CIFAR-10 file {path} (truncated or not a python batch: {exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"corrupt CIFAR-10 file {path}: not a dict with b'data' and b'labels'")
    images = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    size = int(np.prod(CIFAR_SHAPE))
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != size or len(images) != len(labels):
        raise ValueError(
            f"corrupt CIFAR-10 file {path}: data {images.dtype} {images.shape} and {len(labels)} labels, "
            f"expected uint8 (N, {size}) with N labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise ValueError(f"corrupt CIFAR-10 file {path}: labels outside 0..{N_CLASSES - 1}")
    return images.reshape(-1, *CIFAR_SHAPE), labels


def _subset(images: np.ndarray, labels: np.ndarray, n: int, seed: int, name: str):
    if len(images) < n:
        raise ValueError(f"CIFAR-10 {name} split has {len(images)} images, fewer than the {n} asked for")
    if n == len(images):
        return images, labels
    idx = np.sort(np.random.default_rng(stable_seed("cifar10", name, "subset", seed)).permutation(len(images))[:n])
    return images[idx], labels[idx]


def make_cifar10(path: str | Path, n_train: int, n_test: int, seed: int = 0) -> Dataset:
    """CIFAR-10 from the python batch files in ``path``: uint8 images and int64 labels, a
    seeded subset when fewer than all images are asked for."""
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory not found: {directory}")
    folder = cifar_folder(directory)
    train = [read_cifar_batch(folder / name) for name in CIFAR_TRAIN_FILES]
    x_train, y_train = _subset(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
                               n_train, seed, "train")
    x_test, y_test = _subset(*read_cifar_batch(folder / CIFAR_TEST_FILE), n_test, seed, "test")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def make_dataset(spec: dict, seed: int = 0, fetch: bool = True) -> Dataset:
    """Build the dataset described by one ``datasets:`` entry of the config (fetching its
    archives first when the entry asks for it with ``download: true``, unless ``fetch`` is
    false: the workflow's data job reads only what its download rule left)."""
    kind = spec["kind"]
    if fetch and spec.get("download") and kind in ("mnist", "cifar10"):
        fetch_dataset(spec)
    if kind == "synthetic":
        return make_synthetic(spec["n_train"], spec["n_test"], spec.get("dim", 10), seed)
    if kind == "nonlinear":
        return make_nonlinear(spec["n_train"], spec["n_test"], spec.get("dim", 10), seed,
                              spec["radius"], spec["gain"], spec["speed"])
    if kind == "gaussian":
        return make_gaussian(spec["n_train"], spec["n_test"], spec.get("dim", 16), seed)
    if kind == "digits":
        return make_digits(spec["n_train"], spec["n_test"], seed)
    if kind == "mnist":
        return make_mnist(spec["path"], spec["n_train"], spec["n_test"], seed)
    if kind == "cifar10":
        return make_cifar10(spec["path"], spec["n_train"], spec["n_test"], seed)
    raise ValueError(f"unknown dataset kind {kind!r}; expected synthetic, nonlinear, gaussian, digits, mnist or cifar10")


def affine_floor(x: np.ndarray, y: np.ndarray) -> float:
    """Least mean squared error (over samples and coordinates, the training loss's
    normalisation) of any affine map x ↦ W x + c from inputs to targets.

    A residual network whose blocks stay in the linear range of their activation acts as an
    affine map, so its loss stays near or above this floor; when the floor exceeds the
    stopping rule's ε, only a network that uses its nonlinearity can converge (docs/maths.md §2).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"affine floor: {len(x)} inputs and {len(y)} targets; expected the same, non-zero number")
    design = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.mean((design @ coef - y) ** 2))


def dataset_affine_floor(path: str | Path) -> float:
    """:func:`affine_floor` of the training split of a dataset file written by the data rule."""
    arrays, _ = read_npz(path, exclude=lambda key: key not in ("x_train", "y_train"))
    missing = [key for key in ("x_train", "y_train") if key not in arrays]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)}; delete it so that the data rule writes it again")
    return affine_floor(arrays["x_train"], arrays["y_train"])
