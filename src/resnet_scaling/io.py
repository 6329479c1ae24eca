"""Atomic writes and the on-disk formats shared by every stage."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np


class DiskFullError(OSError):
    """No space left on the device (or the disk quota exceeded) while a result was written."""

    def __str__(self) -> str:
        return str(self.strerror)


#: errno values that mean the disk is full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: str | os.PathLike, exc: OSError) -> DiskFullError:
    """The one sentence of a write that ran out of space, naming the file being written."""
    return DiskFullError(exc.errno, f"no space left on the device while writing {path} ({os.strerror(exc.errno)}); "
                                    "free some space and rerun: nothing was lost, no file is left half-written")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves any previous ``path`` untouched and no partial file; a
    full disk is one :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = None
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp"
        )
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        # mkstemp creates 0600; a result gets the permissions of any other new file
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno in DISK_FULL and not isinstance(exc, DiskFullError):
            raise disk_full(path, exc) from None
        raise
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class JobLog(io.TextIOBase):
    """The stderr of a workflow job: its log file, and the job's own stderr once the log
    cannot be written (a full disk), so that a job's last words, such as the sentence of a
    :class:`DiskFullError`, are never lost with its log."""

    def __init__(self, path: str | os.PathLike, mode: str = "a"):
        self.path = str(path)
        self._file = open(path, mode, buffering=1)

    def write(self, text: str) -> int:
        if self._file is not None:
            try:
                self._file.write(text)
                return len(text)
            except OSError as exc:
                self._give_up(exc)
        sys.__stderr__.write(text)
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._give_up(exc)
        sys.__stderr__.flush()

    def _give_up(self, exc: OSError) -> None:
        try:
            self._file.close()
        except OSError:
            pass
        self._file = None
        sys.__stderr__.write(f"cannot write the log {self.path} ({os.strerror(exc.errno or 0)}); "
                             "what follows goes here instead\n")


def job_log(path: str | os.PathLike, mode: str = "a") -> JobLog:
    """What a workflow script sets ``sys.stderr`` to: its log (:class:`JobLog`)."""
    return JobLog(path, mode)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (sorted keys, so that equal objects give equal files)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV atomically, without the index (gzip-compressed when the
    name ends in ``.gz``). The gzip header records neither a time nor the temporary file's
    name, so the same table gives the same bytes whenever it is written."""
    with atomic_path(path, suffix=".csv.tmp") as tmp:
        if not str(path).endswith(".gz"):
            frame.to_csv(tmp, index=False)
            return
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed, \
                io.TextIOWrapper(packed, encoding="utf-8", newline="") as text:
            frame.to_csv(text, index=False)


def write_npz(path: str | os.PathLike, metadata: dict | None = None, **arrays: np.ndarray) -> None:
    """Write named arrays (and a JSON metadata dict under ``metadata``) atomically."""
    if metadata is not None:
        arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True, default=_json_default))
    with atomic_path(path, suffix=".npz.tmp") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_npz(
    path: str | os.PathLike, exclude: Iterable[str] | Callable[[str], bool] | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Read arrays and metadata written by :func:`write_npz`; one clear error if unreadable.

    ``exclude``: names of arrays to leave unread, or a predicate on the name. An .npz is read
    one array at a time, so a left-out array costs neither reading time nor memory (the
    metadata is always read).
    """
    path = Path(path)
    if exclude is None:
        skip = lambda key: False  # noqa: E731
    elif callable(exclude):
        skip = exclude
    else:
        skip = frozenset(exclude).__contains__
    recover = f"delete {path} and rerun the workflow to rebuild it"
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                raise ValueError(f"{path} is not a .npz archive (corrupt or truncated); {recover}")
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files if key == "metadata" or not skip(key)}
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file: {path}") from None
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"cannot read {path}: {exc}; {recover}") from exc
    except Exception as exc:  # zipfile / CRC / EOF errors all mean a corrupt file
        raise ValueError(f"cannot read {path} (corrupt or truncated: {exc}); {recover}") from exc
    metadata = json.loads(str(arrays.pop("metadata"))) if "metadata" in arrays else {}
    return arrays, metadata


#: The name of a training output: ``.../train/{experiment}/depth_{L}.npz`` (results/train/,
#: results/cifar/train/, results/regimes/train/).
TRAINING_NAME = re.compile(r"(?:^|/)train/(?P<experiment>[^/]+)/depth_(?P<depth>\d+)\.npz$")


def check_training_name(path: str | os.PathLike, experiment: str, depth: int) -> None:
    """A training output holds the experiment and depth its name says: a valid file copied
    or moved onto another one's name is refused, naming it, before anything is computed from it."""
    match = TRAINING_NAME.search(Path(path).as_posix())
    if match is None:
        return
    named = (match["experiment"], int(match["depth"]))
    if named != (str(experiment), int(depth)):
        raise ValueError(
            f"{path} holds experiment {experiment!r} at depth {depth}, not experiment {named[0]!r} at depth "
            f"{named[1]} as its name says (copied or moved?); delete {path} and rerun the workflow to rebuild it")


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from the given parts (experiment, depth, seed index, purpose).

    The same parts always give the same seed, independent of Python's hash randomisation.
    """
    import hashlib

    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
