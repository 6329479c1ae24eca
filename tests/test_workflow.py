"""The smoke config end to end in a temporary directory: every stage, the report, a
no-op rerun, and identical numbers from an independent second run."""

import numpy as np
import pytest

from resnet_scaling.config import depth_grid
from resnet_scaling.io import read_npz
from workflow_utils import SMOKE, copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow


def _smoke_experiments(work):
    import yaml

    cfg = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    return {name: depth_grid(exp["depths"]) for name, exp in cfg["experiments"].items() if exp.get("enabled", True)}


def test_training_outputs_exist_with_all_seeds(smoke_run):
    for exp, depths in _smoke_experiments(smoke_run).items():
        for depth in depths:
            arrays, meta = read_npz(smoke_run / "results" / "train" / exp / f"depth_{depth}.npz")
            assert arrays["A"].shape[:2] == (2, depth)
            assert set(arrays["status"]) <= {"converged", "stopped", "max_epochs", "diverged"}
            assert meta["experiment"] == exp and meta["depth"] == depth
            assert (smoke_run / "logs" / "train" / exp / f"depth_{depth}.log").stat().st_size > 0
            assert not (smoke_run / "results" / "checkpoints" / exp / f"depth_{depth}.pt.tmp").exists()


def test_figures_are_written_as_pdf_and_png(smoke_run):
    pngs = sorted((smoke_run / "figures").glob("*.png"))
    assert pngs, "no figure was written"
    for png in pngs:
        assert png.stat().st_size > 1000
        assert png.with_suffix(".pdf").exists()


def test_second_invocation_has_nothing_to_do(smoke_run):
    proc = run_snakemake(smoke_run, "--cores", "2", *SMOKE, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_report_is_generated(smoke_run):
    proc = run_snakemake(smoke_run, "--cores", "1", *SMOKE, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (smoke_run / "report.html").stat().st_size > 10_000


def test_same_config_same_numbers(smoke_run, tmp_path):
    """Determinism on CPU: an independent run of the training stage gives identical weights."""
    work = copy_workflow(tmp_path / "again")
    targets = [
        f"results/train/{exp}/depth_{depth}.npz"
        for exp, depths in _smoke_experiments(work).items()
        for depth in depths
    ]
    proc = run_snakemake(work, *targets, "--cores", "2", *SMOKE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for target in targets:
        first, _ = read_npz(smoke_run / target)
        second, _ = read_npz(work / target)
        for key in ("A", "b", "delta", "train_loss"):
            assert np.array_equal(first[key], second[key], equal_nan=True), (target, key)
