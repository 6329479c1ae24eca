"""Config checks of the convolutional experiments and of downloadable datasets: one sentence naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from resnet_scaling.config import ConfigError, check_config, with_schema_defaults

ROOT = Path(__file__).resolve().parents[1]
REDUCED = yaml.safe_load((ROOT / "config/cifar_reduced.yaml").read_text())


def _checked(mutate):
    cfg = copy.deepcopy(REDUCED)
    mutate(cfg)
    check_config(with_schema_defaults(cfg))


def test_shipped_configs_with_conv_experiments_pass():
    for name in ("cifar_reduced.yaml", "paper.yaml"):
        cfg = with_schema_defaults(yaml.safe_load((ROOT / "config" / name).read_text()))
        check_config(cfg)
        assert cfg["conv_experiments"]["cifar_resnet"]["lr"] == 0.1
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    assert paper["conv_experiments"]["cifar_resnet"]["depths"] == [
        8, 11, 12, 14, 16, 18, 20, 24, 28, 33, 42, 50, 65, 80, 100, 121]
    assert paper["conv_experiments"]["cifar_resnet"]["epochs"] == 200
    assert paper["datasets"]["mnist"]["n_train"] == 60000
    assert {paper["experiments"][e]["dataset"] for e in ("tanh_shared_mnist", "relu_multi_mnist")} == {"mnist"}


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["conv_experiments"]["cifar_resnet"].update(depths=[8, 9, 12]),
     "conv_experiments.cifar_resnet.depths[1]: 9 is not allowed"),
    (lambda c: c["datasets"]["cifar10"].update(kind="digits"),
     "conv_experiments.cifar_resnet.dataset: 'cifar10' is not a dataset of kind cifar10"),
    (lambda c: c["datasets"]["cifar10"].update(download=False, path="/nonexistent/cifar"),
     "datasets.cifar10.path: CIFAR-10 folder '/nonexistent/cifar' does not exist (put the files there, or set download"),
    (lambda c: c["datasets"]["cifar10"].pop("urls"), "datasets.cifar10.urls: download is true but no archive"),
    (lambda c: c["datasets"]["cifar10"]["urls"][0].update(md5="xyz"), "datasets.cifar10.urls[0].md5"),
    (lambda c: c["conv_experiments"]["cifar_resnet"].update(fit_min_depth=16),
     "conv_experiments.cifar_resnet.fit_min_depth: 16 leaves fewer than 3 depths"),
    (lambda c: c["experiments"].update(fc={"dataset": "cifar10", "activation": "tanh", "delta": "shared",
                                           "depths": [4, 8, 16]}),
     "experiments.fc.dataset: 'cifar10' holds images"),
])
def test_bad_values_are_refused_naming_the_key(mutate, message):
    with pytest.raises(ConfigError) as info:
        _checked(mutate)
    assert str(info.value).startswith(message), str(info.value)
