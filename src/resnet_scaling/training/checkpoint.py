"""Checkpoints of the trainers (:mod:`.train`, :mod:`..cnn.train`): one fingerprint, one
atomic save, one safe load and one resume/stop schedule for both.

A checkpoint is read with ``torch.load(weights_only=True)``: tensors, dicts, lists, strings
and numbers only. A file that needs more (a pickle of arbitrary Python objects, such as one
planted under ``results/checkpoints/``) is refused unread, since unpickling it could run any
code it carries; the job says so on the console and trains from scratch. Everything the
trainers store is therefore made of those plain types.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..io import atomic_path

log = logging.getLogger(__name__)

#: Version of the checkpoint layout; a checkpoint of another layout is not resumed (training restarts).
CHECKPOINT_FORMAT = 3


class UnsafeFileError(ValueError):
    """A file that ``torch.load(weights_only=True)`` refuses: it holds pickled Python objects."""


def console(message: str) -> None:
    """Say ``message`` on the console (the process's own stderr) and, where a job's stderr is
    its log (:func:`..io.job_log`), in the log too."""
    for stream in dict.fromkeys((sys.__stderr__, sys.stderr)):
        if stream is None:
            continue
        try:
            stream.write(message + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def data_digest(data: dict, keys=("x_train", "y_train")) -> str:
    """sha256 of the training arrays (their dtype, shape and bytes)."""
    digest = hashlib.sha256()
    for key in keys:
        array = np.ascontiguousarray(data[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def fingerprint(*parts, data: dict) -> str:
    """What a checkpoint must match to be resumed: its layout, the run's settings (``parts``,
    JSON values) and its training data."""
    return json.dumps([CHECKPOINT_FORMAT, *parts, data_digest(data)], sort_keys=True)


def load(path: str | Path, what: str = "checkpoint"):
    """The object saved in ``path``, read with ``weights_only=True``.

    Raises :class:`UnsafeFileError` (one sentence) for a file of pickled Python objects, and a
    ValueError naming the file for one that cannot be read at all.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: refused below if it matters
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "weights only" not in text.lower():
            raise ValueError(f"cannot read {what} {path}: {text.splitlines()[0] if text else exc!r}; "
                             "delete it to start over") from None
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        opcode = re.search(r"Unsupported operand (\d+)", text)
        detail = (f"the global {found.group(1)}" if found else f"pickle opcode {opcode.group(1)}" if opcode
                  else "objects weights_only loading does not allow")
        raise UnsafeFileError(
            f"{what} {path} was not loaded: it holds pickled Python objects ({detail}) beyond tensors and plain "
            "values, and loading those (weights_only=False) would run whatever code the file carries") from None
    except Exception as exc:
        raise ValueError(f"cannot read {what} {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                         "delete it to start over") from None


def save(path: str | Path, payload: dict) -> None:
    """Write ``payload`` atomically (a crash leaves the previous checkpoint whole)."""
    # through a Python file, a full disk is an OSError (io.DiskFullError), not an iostream error
    with atomic_path(path, suffix=".pt.tmp") as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


class Checkpointing:
    """The checkpoint of one training job: resume, save every ``every`` epochs and at the end,
    and stop after ``stop_after_epochs`` epochs of this call (to test resumption)."""

    def __init__(self, path: str | Path | None, fingerprint: str, every: int, stop_after_epochs: int | None = None):
        self.path = Path(path) if path else None
        self.fingerprint, self.every, self.stop_after = fingerprint, int(every), stop_after_epochs
        self.epochs_this_call = 0

    def resume(self) -> dict | None:
        """The saved payload when the checkpoint exists and belongs to this job, else None
        (saying why on the console when a file was refused)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = load(self.path)
        except UnsafeFileError as exc:
            console(f"{exc}; training starts from scratch and replaces it at its first checkpoint")
            return None
        if not isinstance(saved, dict) or saved.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s belongs to another configuration or layout; starting from scratch", self.path)
            return None
        log.info("resuming from %s", self.path)
        return {key: value for key, value in saved.items() if key != "fingerprint"}

    def save(self, payload: dict) -> None:
        if self.path is not None:
            save(self.path, {"fingerprint": self.fingerprint, **payload})

    def after_epoch(self, epoch: int, finished: bool, payload: Callable[[], dict], due: bool = False) -> bool:
        """Count an epoch (``epoch`` epochs done); save when one is due (every ``every`` epochs,
        ``due``, the job ``finished``, or a stop); True when the call must stop here."""
        self.epochs_this_call += 1
        stop = self.stop_after is not None and self.epochs_this_call >= self.stop_after and not finished
        if stop or finished or due or epoch % self.every == 0:
            self.save(payload())
        return stop
