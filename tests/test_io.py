"""Writes on a full disk: one sentence that says so and names the file being written, nothing
half-written, gzipped tables whose bytes do not depend on when they were written, and a job's last words reach its stderr when its log cannot be written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resnet_scaling import io
from resnet_scaling.training.data import make_synthetic
from resnet_scaling.io import DiskFullError, write_csv, write_json, write_npz, write_text
from resnet_scaling.training.train import train_ensemble

FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")


@pytest.fixture()
def full_disk(monkeypatch):
    """Every atomic write's temporary file lands on /dev/full (a link beside the target)."""
    made = []

    def mkstemp(dir, prefix, suffix):
        link = Path(dir) / f"{prefix}full{suffix}"
        link.symlink_to(FULL)
        made.append(link)
        return os.open(link, os.O_WRONLY), str(link)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    return made


def _message(path: Path) -> str:
    return (f"no space left on the device while writing {path} (No space left on device); free some space "
            "and rerun: nothing was lost, no file is left half-written")


@pytest.mark.parametrize("writer", ["csv", "csv.gz", "npz", "text", "json"])
def test_every_writer_on_a_full_disk_says_so_naming_the_file(tmp_path, full_disk, writer):
    path = tmp_path / f"table.{writer}"
    path.write_text("the previous result\n")
    frame = pd.DataFrame({"x": np.arange(100_000)})
    with pytest.raises(DiskFullError) as info:
        {"csv": lambda: write_csv(path, frame), "csv.gz": lambda: write_csv(path, frame),
         "npz": lambda: write_npz(path, metadata={"k": 1}, x=np.arange(100_000.0)),
         "text": lambda: write_text(path, "x" * 100_000),
         "json": lambda: write_json(path, {"x": list(range(100_000))})}[writer]()
    assert str(info.value) == _message(path)
    assert path.read_text() == "the previous result\n"  # untouched
    assert full_disk and not any(link.is_symlink() for link in full_disk)  # no temporary file left


def test_a_training_checkpoint_on_a_full_disk_says_so_naming_the_file(tmp_path, full_disk):
    """torch.save given a path reports a full disk as an iostream error ('unexpected pos');
    the checkpoint is written through a Python file, so it is the one sentence."""
    cfg = dict(dataset="synthetic", activation="tanh", delta="shared", init="xavier", init_sd=0.5, lr=0.01,
               batch_size=16, max_epochs=2, epsilon=1e-9, patience=100, seeds=2, checkpoint_every=1)
    checkpoint = tmp_path / "checkpoints" / "depth_4.pt"
    with pytest.raises(DiskFullError) as info:
        train_ensemble("exp", cfg, 4, make_synthetic(64, 16, dim=4, seed=0), checkpoint_path=checkpoint,
                       progress=False)
    assert str(info.value) == _message(checkpoint)
    assert not checkpoint.exists()


def test_a_job_whose_log_cannot_be_written_tells_its_stderr(tmp_path):
    """A script's stderr is its log; on a full disk the log cannot take the last words, which go
    to the job's own stderr (and the job ends with its error's status, not Python's 120)."""
    script = ("import logging, sys\n"
              "from resnet_scaling.io import disk_full, job_log\n"
              "sys.stderr = job_log(sys.argv[1])\n"
              "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
              "logging.info('training %s', 'x' * 10000)\n"
              "raise disk_full('results/train/e/depth_8.npz', OSError(28, 'No space left on device'))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(FULL)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(io.__file__).parents[1])})
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "cannot write the log /dev/full (No space left on device)" in proc.stderr
    assert proc.stderr.rstrip().endswith(f"DiskFullError: {_message(Path('results/train/e/depth_8.npz'))}")


def test_a_gzipped_table_has_the_same_bytes_whenever_it_is_written(tmp_path):
    """The gzip header carries no time stamp and no temporary name: the bytes depend on the table only."""
    frame = pd.DataFrame({"depth": [4, 8], "value": [0.25, 0.125]})
    write_csv(tmp_path / "a.csv.gz", frame)
    time.sleep(1.1)  # gzip stamps whole seconds
    write_csv(tmp_path / "a_again.csv.gz", frame)
    first, second = (tmp_path / "a.csv.gz").read_bytes(), (tmp_path / "a_again.csv.gz").read_bytes()
    assert first == second
    assert first[4:8] == b"\0\0\0\0"  # MTIME
    assert pd.read_csv(tmp_path / "a.csv.gz").equals(frame)
