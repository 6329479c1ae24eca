"""MNIST through the workflow: MNIST files that are replaced or damaged seen before any
training, and the downloads run as local rules that feed the data jobs."""

from __future__ import annotations

import pytest
import yaml

from slurm_helpers import parse_dry_run, rule_texts
from test_cifar_data import write_cifar
from test_data import _write_idx, _write_mnist
from workflow_utils import copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow


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
