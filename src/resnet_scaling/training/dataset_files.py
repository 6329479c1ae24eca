"""The file names and folders of the MNIST and CIFAR-10 datasets on disk.

The readers (:mod:`.data`) and the fetcher (:mod:`.fetch`) both need them; kept here, the
two import this module and not each other.
"""

from __future__ import annotations

from pathlib import Path

#: The four standard IDX files of MNIST (each raw or ``.gz``).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
#: The folder the official python archive unpacks to; accepted inside ``path`` too.
CIFAR_FOLDER = "cifar-10-batches-py"


def cifar_folder(path: str | Path) -> Path:
    """The folder holding the batch files: ``path`` itself or its ``cifar-10-batches-py``."""
    directory = Path(path)
    nested = directory / CIFAR_FOLDER
    return nested if (nested / CIFAR_TEST_FILE).exists() and not (directory / CIFAR_TEST_FILE).exists() else directory
