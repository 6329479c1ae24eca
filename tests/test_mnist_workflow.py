"""MNIST through the workflow: real MNIST trained and analysed end to end (where the offline
copy is present), MNIST files that are replaced or damaged seen before any training, and the
downloads run as local rules that feed the data jobs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from slurm_helpers import parse_dry_run, rule_texts
from test_cifar_data import write_cifar
from test_data import _write_idx, _write_mnist
from workflow_utils import ROOT, copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow


#: The offline copy of the four IDX files beside the repository (CI has it; a user's clone may not).
REAL_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def mnist_config(work, folder, n_train, n_test, depths=(8, 16, 32)) -> list[str]:
    """The smoke config with its experiments replaced by ReLU / per-layer δ on MNIST (the
    experiment the MNIST reference value is for), 2 seeds, 3 epochs; no studies at initialisation."""
    cfg = yaml.safe_load((work / "config/smoke.yaml").read_text())
    cfg["datasets"]["mnist"] = {"kind": "mnist", "path": str(folder), "n_train": n_train, "n_test": n_test}
    cfg["experiments"] = {
        "relu_multi_mnist": {**cfg["experiments"]["relu_multi_synthetic"], "dataset": "mnist", "depths": list(depths)}
    }
    cfg["init_limits"] = {**cfg.get("init_limits", {}), "enabled": False}
    (work / "config/mnist_test.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return ["--configfile", "config/mnist_test.yaml"]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not found in {REAL_MNIST} (the four IDX files; CI has them)")
def test_real_mnist_is_trained_and_analysed_end_to_end(tmp_path):
    work = copy_workflow(tmp_path / "work")
    config = mnist_config(work, REAL_MNIST, n_train=2048, n_test=512)
    proc = run_snakemake(work, "--cores", "2", *config, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-6000:]

    from resnet_scaling.io import read_npz

    data, _ = read_npz(work / "results/data/mnist.npz")
    assert data["x_train"].shape == (2048, 25) and data["x_test"].shape == (512, 25)
    np.testing.assert_allclose(np.linalg.norm(data["x_train"], axis=1), 1.0, rtol=1e-12)
    # one-hot digits in the first 10 of the 25 coordinates, every digit present
    assert np.all(data["y_train"][:, 10:] == 0) and np.all(data["y_train"].sum(axis=1) == 1)
    assert np.all(data["y_train"].sum(axis=0)[:10] > 100)

    exponents = pd.read_csv(work / "results/exponents.csv")
    ours = exponents[exponents["experiment"] == "relu_multi_mnist"]
    assert not ours.empty and (ours["n_depths"] == 3).all() and (ours["n_seeds"] == 2).all()
    assert np.isfinite(ours["exponent"]).all()
    regimes = pd.read_csv(work / "results/regimes.csv")
    assert regimes.loc[regimes["experiment"] == "relu_multi_mnist", "dataset_kind"].tolist() == ["mnist"]
    # the MNIST reference value is scored on the MNIST networks
    rows = [line for line in (work / "results/scorecard.md").read_text().splitlines()
            if line.startswith("| β of \\|δ_k\\|A_k (max norm), ReLU, per-layer δ, MNIST | plotting-constant |")]
    assert len(rows) == 1 and "| relu_multi_mnist |" in rows[0] and "digits" not in rows[0], rows
    limits = pd.read_csv(work / "results/limits/summary.csv")
    assert "relu_multi_mnist" in set(limits["experiment"])
    for name in ("scaling_max_norm", "limits_error_relu_multi_mnist", "fbsde_gradient_error_relu_multi_mnist"):
        assert (work / f"figures/{name}.png").stat().st_size > 10_000, name


@pytest.mark.slow
def test_replaced_or_mislabelled_mnist_files_are_seen_before_training(tmp_path):
    """The data rule reads the IDX files as inputs: one replaced in place reruns the dataset;
    one with labels outside 0-9 stops the data job with one sentence naming it, and no
    network is trained."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    files = _write_mnist(folder, n_train=40, n_test=20)
    work = copy_workflow(tmp_path / "work")
    config = mnist_config(work, folder, n_train=32, n_test=16)
    first = run_snakemake(work, "results/data/mnist.npz", "--cores", "1", *config)
    assert first.returncode == 0, first.stderr[-4000:]

    labels_path, labels = files[("train", "labels")]
    _write_idx(labels_path, labels[::-1])  # other valid labels, written in place
    planned = run_snakemake(work, "-n", "results/data/mnist.npz", "--cores", "1", *config)
    assert planned.returncode == 0, planned.stderr[-4000:]
    assert [job.rule for job in parse_dry_run(planned.stdout)] == ["data"], planned.stdout[-3000:]

    mislabelled = labels.copy()
    mislabelled[3] = 12
    _write_idx(labels_path, mislabelled)
    proc = run_snakemake(work, "--cores", "1", *config)
    assert proc.returncode != 0
    log = (work / "logs/data/mnist.log").read_text()
    assert f"MNIST file {labels_path} has 1 label(s) outside the digits 0..9 (largest 12)" in log, log[-3000:]
    assert not (work / "results/train").exists()


def test_downloads_are_local_rules_that_feed_the_data_jobs(tmp_path):
    """On a cluster the archives are fetched on the submitting host (compute nodes often have
    no internet), and only where the files are not in the dataset's folder yet."""
    rules = rule_texts()
    assert rules["download_mnist"].local and rules["download_cifar10"].local
    work = copy_workflow(tmp_path / "work")
    targets = ["results/data/mnist.npz", "results/data/cifar10.npz", "--configfile", "config/paper.yaml"]
    proc = run_snakemake(work, "-n", *targets)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(job.rule for job in parse_dry_run(proc.stdout)) == ["data", "data", "download_cifar10", "download_mnist"]

    (work / "data/mnist").mkdir(parents=True)
    _write_mnist(work / "data/mnist", compress=True)
    write_cifar(work / "data/cifar10")
    proc = run_snakemake(work, "-n", *targets)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [job.rule for job in parse_dry_run(proc.stdout)] == ["data", "data"], proc.stdout[-3000:]
