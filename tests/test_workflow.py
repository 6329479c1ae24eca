"""The smoke config end to end in a temporary directory: every stage, the report, a
no-op rerun, and identical numbers from an independent second run."""

from pathlib import Path

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
            # the weights are stored once, in the training output; beside it only the per-layer table
            assert (smoke_run / "results" / "weights" / exp / f"depth_{depth}_layers.csv.gz").stat().st_size > 0
            assert not (smoke_run / "results" / "weights" / exp / f"depth_{depth}.npz").exists()
            assert (smoke_run / "logs" / "train" / exp / f"depth_{depth}.log").stat().st_size > 0
            assert not (smoke_run / "results" / "checkpoints" / exp / f"depth_{depth}.pt.tmp").exists()
            # the checkpoint is removed once its job has succeeded
            assert not (smoke_run / "results" / "checkpoints" / exp / f"depth_{depth}.pt").exists()


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


@pytest.mark.slow
def test_report_is_generated(smoke_run):
    proc = run_snakemake(smoke_run, "--cores", "1", *SMOKE, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (smoke_run / "report.html").stat().st_size > 10_000
    # every caption renders: docutils reports problems as "(ERROR/3)" lines
    assert "ERROR/" not in proc.stdout + proc.stderr, [
        line for line in (proc.stdout + proc.stderr).splitlines() if "ERROR/" in line
    ][:5]


@pytest.mark.slow
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


def test_results_get_the_usual_permissions(smoke_run):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    for path in ("results/exponents.csv", "results/regimes.csv", "results/data/synthetic.npz"):
        mode = stat.S_IMODE((smoke_run / path).stat().st_mode)
        assert mode == 0o666 & ~mask, (path, oct(mode))


NOTEBOOKS = ("overview", "scaling", "limits_backprop", "initialisation")
ALL_NOTEBOOKS = (*NOTEBOOKS, "paper_scale")


def test_stage_notebooks_execute_top_to_bottom_on_the_smoke_results(smoke_run):
    """Every notebook is run by the default target: its table is written and its executed
    copy has an output for every code cell and no error."""
    import nbformat

    for name in NOTEBOOKS:
        assert (smoke_run / "results" / "notebooks" / f"{name}.csv").stat().st_size > 0, name
        executed = nbformat.read(smoke_run / "logs" / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [c for c in executed.cells if c.cell_type == "code"]
        assert code and all(c.get("execution_count") for c in code), name
        assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])), name


@pytest.mark.slow
def test_paper_scale_notebook_executes_on_the_committed_gallery(tmp_path):
    """The paper-scale notebook runs top to bottom on figures/paper/ (opened by hand from notebooks/)."""
    import shutil
    import subprocess
    import sys

    from workflow_utils import ROOT

    if not (ROOT / "figures" / "paper" / "exponents.csv").exists():
        pytest.skip("this checkout has no paper-scale gallery")
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    shutil.copytree(ROOT / "figures" / "paper", work / "figures" / "paper")
    (work / "results" / "notebooks").mkdir(parents=True)
    jupyter = str(Path(sys.executable).parent / "jupyter-nbconvert")
    proc = subprocess.run([jupyter, "--to", "notebook", "--execute", "--output", str(tmp_path / "out.ipynb"),
                           "paper_scale.py.ipynb"], cwd=work / "notebooks", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (work / "results" / "notebooks" / "paper_scale.csv").read_text()
    assert "tanh_shared_synthetic" in table and "relu_multi_synthetic" in table


def test_notebooks_have_cell_ids_and_no_network_access():
    import nbformat

    from workflow_utils import ROOT

    for name in ALL_NOTEBOOKS:
        notebook = nbformat.read(ROOT / "notebooks" / f"{name}.py.ipynb", as_version=4)
        nbformat.validate(notebook)
        assert all(cell.get("id") for cell in notebook.cells), name
        source = "\n".join(cell.source for cell in notebook.cells)
        assert "http" not in source and "urlopen" not in source and "requests" not in source, name


@pytest.mark.slow
def test_a_diverged_experiment_leaves_the_others_analysed(tmp_path):
    """Every seed of one experiment diverges (lr 1e3): it gets a row saying why, the other
    experiment is analysed and drawn as usual, and the run ends with status 0."""
    import pandas as pd
    import yaml

    work = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    cfg["experiments"]["relu_multi_synthetic"]["lr"] = 1000.0
    (work / "config" / "diverged.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    proc = run_snakemake(work, "--cores", "2", "--configfile", "config/diverged.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    regimes = pd.read_csv(work / "results" / "regimes.csv").set_index("experiment")
    bad = regimes.loc["relu_multi_synthetic"]
    assert bad["regime"] == "no usable networks" and bad["n_usable"] == 0
    assert "diverged:8" in bad["note"]
    # the other experiment is analysed: it gets a verdict of the rule (on the smoke sizes its
    # intervals may be too wide for more than "undetermined")
    assert regimes.loc["tanh_shared_synthetic", "regime"] in ("ODE", "SDE", "neither", "undetermined")
    training = pd.read_csv(work / "results" / "scaling" / "relu_multi_synthetic" / "training.csv")
    assert set(training["status"]) == {"diverged"} and training["stop_reason"].str.len().min() > 0
    figures = {p.name for p in (work / "figures").glob("*.png")}
    for name in ("limits_error", "fbsde_gradient_error", "scaling_paths", "scaling_decomposition"):
        assert f"{name}_tanh_shared_synthetic.png" in figures
        assert f"{name}_relu_multi_synthetic.png" not in figures
    assert {"scaling_max_norm.png", "scaling_summary.png", "limits_convergence.png"} <= figures
    scorecard = (work / "results" / "scorecard.md").read_text()
    assert "not evaluated: all 8 networks excluded (diverged:8)" in scorecard
