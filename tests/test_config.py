"""Bad config gets one clear error naming the key or value, before any job runs."""

import copy

import pytest
import yaml

from resnet_scaling.config import ConfigError, check_config, depth_grid
from workflow_utils import ROOT, copy_workflow, run_snakemake

SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def test_depth_grid_is_the_original_geometric_grid():
    # REFERENCES.md: unique(floor(1.2**n)) — 3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22, ...
    assert depth_grid({"min": 3, "max": 22, "base": 1.2}) == [3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 22]
    assert depth_grid({"min": 8, "max": 1024, "base": 2}) == [8, 16, 32, 64, 128, 256, 512, 1024]
    assert depth_grid([64, 8, 8, 16]) == [8, 16, 64]


def _bad(mutate):
    cfg = copy.deepcopy(SMOKE)
    mutate(cfg)
    return cfg


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(dataset="cifar"),
         "experiments.tanh_shared_synthetic.dataset: 'cifar'"),
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(depths={"min": 64, "max": 8, "base": 2}),
         "experiments.tanh_shared_synthetic.depths: min 64"),
        (lambda c: c["datasets"].update(m={"kind": "mnist", "n_train": 4, "n_test": 4, "path": "/nonexistent/mnist"}),
         "datasets.m.path: MNIST folder '/nonexistent/mnist'"),
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(shuffle="original-defect", batch_size=30),
         "experiments.tanh_shared_synthetic.batch_size: 30"),
        (lambda c: [e.update(enabled=False) for e in c["experiments"].values()], "no experiment is enabled"),
    ],
)
def test_semantic_errors_name_the_key(mutate, message):
    with pytest.raises(ConfigError) as info:
        check_config(_bad(mutate))
    assert message in str(info.value)


def test_smoke_config_passes():
    check_config(copy.deepcopy(SMOKE))


@pytest.mark.workflow
@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(activation="sigmoid"), "sigmoid"),
        (lambda c: c["experiments"]["relu_multi_synthetic"].update(learning_rate=0.1), "learning_rate"),
        (lambda c: c["experiments"]["tanh_shared_synthetic"].update(dataset="cifar"), "cifar"),
    ],
)
def test_workflow_rejects_bad_config_before_any_job(tmp_path, mutate, expected):
    work = copy_workflow(tmp_path / "wf")
    bad = work / "config" / "bad.yaml"
    bad.write_text(yaml.safe_dump(_bad(mutate)))
    proc = run_snakemake(work, "--cores", "1", "--configfile", str(bad))
    assert proc.returncode != 0
    assert expected in proc.stderr + proc.stdout
    assert not (work / "results").exists()
