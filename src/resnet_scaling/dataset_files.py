"""The file names and folders of the MNIST and CIFAR-10 datasets on disk, and the files a
``datasets:`` entry is read from.

The readers (:mod:`.training.data`), the fetcher (:mod:`.training.fetch`), the config checks
(:mod:`.config`) and the workflow's data rules all need them; kept here, on the ground floor,
none of them imports another for them.
"""

from __future__ import annotations

import os
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


def archive_name(entry: dict) -> str:
    """The file name of the archive a ``urls`` entry downloads (the last part of its URL)."""
    return entry["url"].rstrip("/").rsplit("/", 1)[-1]


DOWNLOADABLE = ("mnist", "cifar10")


def dataset_folder(spec: dict) -> str:
    """The dataset's ``path``, normalised (the download rule matches its outputs on it)."""
    return os.path.normpath(spec["path"])


def download_names(kind: str) -> tuple[str, ...]:
    """The files a download leaves in the dataset's folder: the four gzipped IDX files of
    MNIST, or the unpacked CIFAR-10 batches."""
    if kind == "mnist":
        return tuple(f"{stem}.gz" for stem in IDX_FILES.values())
    return (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)


def source_files(spec: dict) -> list[str]:
    """The files the data job reads for one ``datasets:`` entry (none for generated data).

    They are the data rule's inputs, so that a file replaced in place makes the dataset and
    everything trained on it stale. A file that is in the folder is taken as it is (raw or
    ``.gz`` IDX, the flat or the nested CIFAR-10 batches); one that is not is the file a
    download leaves there.
    """
    kind = spec["kind"]
    if kind not in DOWNLOADABLE:
        return []
    folder = Path(dataset_folder(spec))
    if kind == "mnist":
        return [str(folder / stem if (folder / stem).exists() else folder / f"{stem}.gz") for stem in IDX_FILES.values()]
    inner = cifar_folder(folder)
    return [str(inner / name) for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)]


def missing_source(spec: dict) -> str | None:
    """The name of the first file of :func:`source_files` that is not there, or None."""
    missing = next((Path(path).name for path in source_files(spec) if not Path(path).exists()), None)
    if missing and spec["kind"] == "mnist":
        return f"{missing.removesuffix('.gz')} (raw or .gz)"
    return missing


def url_problem(spec: dict) -> str | None:
    """Why the ``urls`` of a downloading MNIST entry cannot give its four IDX files, or None:
    each file is one archive named after it (as the official ones are)."""
    if spec["kind"] != "mnist":
        return None
    names = {archive_name(entry) for entry in spec.get("urls") or []}
    missing = [name for name in download_names("mnist") if name not in names]
    return f"no archive named {missing[0]}" if missing else None
