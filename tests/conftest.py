"""Shared fixtures: the repository root and the project's Python executable."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """One torch thread per test process: small batched ops are fastest that way, and a
    shared CI machine with workflow subprocesses is not oversubscribed."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
