"""The reduced CIFAR-10 path end to end on generated CIFAR-format data: data, training (killed
mid-run and resumed from its checkpoint), kernel extraction, FFT operator norms, exponents,
regime, scorecard and figures (config/cifar_reduced.yaml)."""

import numpy as np
import pandas as pd
import pytest
import yaml

from test_cifar_data import write_cifar
from workflow_utils import copy_workflow, run_snakemake

CONFIG = ["--configfile", "config/cifar_reduced.yaml"]


@pytest.mark.workflow
@pytest.mark.slow
def test_reduced_cifar_workflow_runs_and_resumes(tmp_path):
    work = copy_workflow(tmp_path / "work")
    cfg = yaml.safe_load((work / "config/cifar_reduced.yaml").read_text())
    spec = cfg["datasets"]["cifar10"]
    # The batch files are present, so nothing is downloaded: 5 × 110 training images, 128 test images.
    write_cifar(work / spec["path"], n_per_batch=110, n_test=spec["n_test"])
    exp = cfg["conv_experiments"]["cifar_resnet"]

    # A training job stopped after its first epoch: its checkpoint is what a killed job leaves.
    first = run_snakemake(work, "results/data/cifar10.npz", "--cores", "1", *CONFIG)
    assert first.returncode == 0, first.stderr[-4000:]
    import sys

    sys.path.insert(0, str(work / "src"))
    from resnet_scaling.cnn.train import train_conv
    from resnet_scaling.io import read_npz

    data, _ = read_npz(work / "results/data/cifar10.npz")
    assert data["x_train"].shape == (512, 3, 32, 32) and data["x_train"].dtype == np.uint8
    ckpt = work / "results/checkpoints/cifar/cifar_resnet/depth_8.pt"
    assert train_conv("cifar_resnet", exp, 8, data, base_seed=cfg["seed"], device="cpu", checkpoint_path=ckpt,
                      progress=False, stop_after_epochs=2) is None

    proc = run_snakemake(work, "--cores", "1", *CONFIG)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "resuming from" in (work / "logs/cifar/train/cifar_resnet/depth_8.log").read_text()
    assert not ckpt.exists()
    resumed, _ = read_npz(work / "results/cifar/train/cifar_resnet/depth_8.npz")
    uninterrupted = train_conv("cifar_resnet", exp, 8, data, base_seed=cfg["seed"], device="cpu", progress=False)
    for name, value in uninterrupted.params.items():
        assert np.array_equal(resumed[f"param:{name}"], value), name

    exponents = pd.read_csv(work / "results/cifar/exponents.csv")
    regimes = pd.read_csv(work / "results/cifar/regimes.csv")
    assert set(exponents["quantity"]) == {"A", "delta", "A_frobenius", "delta_frobenius"}
    max_norm = exponents[(exponents["statistic"] == "max_norm") & exponents["quantity"].isin(["A", "delta"])]
    assert len(max_norm) == 2 and max_norm["exponent"].notna().all()
    assert (max_norm["n_depths"] == 3).all() and (max_norm["n_seeds"] == 2).all()
    assert regimes["regime"].iloc[0] in ("ODE", "SDE", "ODE (rough weights)", "neither", "undetermined")  # 3 depths x 2 seeds: wide intervals
    scorecard = (work / "results/cifar/scorecard.md").read_text()
    assert "figure-reading" in scorecard and "figs/cifar-delta-scaling-max_norm.png" in scorecard
    for name in ("max_norm", "hypothesis"):
        assert (work / f"figures/cifar_{name}.png").stat().st_size > 10_000
    layers = pd.read_csv(work / "results/cifar/cifar_resnet/depth_12_layers.csv.gz")
    assert len(layers) == 2 * 2 * 2 * 12  # seeds × kernels × norms × blocks
