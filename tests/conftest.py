"""Shared fixtures: the repository root and the project's Python executable."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One local run of the whole smoke DAG in a temporary copy, shared by the workflow and
    profile tests (the profile tests compare the cluster run's outputs with it)."""
    from workflow_utils import SMOKE, copy_workflow, run_snakemake

    work = copy_workflow(tmp_path_factory.mktemp("smoke"))
    proc = run_snakemake(work, "--cores", "2", *SMOKE)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return work


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """One torch thread per test process: small batched ops are fastest that way, and a
    shared CI machine with workflow subprocesses is not oversubscribed."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
