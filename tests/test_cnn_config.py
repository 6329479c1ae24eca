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


def test_a_missing_dataset_file_is_named_before_any_job(tmp_path):
    """Without a download, every file the data job will read must be in the folder already."""
    from test_cifar_data import write_cifar
    from test_data import _write_mnist

    (tmp_path / "mnist").mkdir()
    files = _write_mnist(tmp_path / "mnist", compress=True)
    write_cifar(tmp_path / "cifar")
    cfg = copy.deepcopy(REDUCED)
    cfg["datasets"]["cifar10"].update(download=False, path=str(tmp_path / "cifar"))
    cfg["datasets"]["mnist"] = {"kind": "mnist", "path": str(tmp_path / "mnist"), "n_train": 20, "n_test": 10}
    check_config(with_schema_defaults(cfg))
    files[("t10k", "labels")][0].unlink()
    with pytest.raises(ConfigError, match=r"^datasets.mnist.path: MNIST file t10k-labels-idx1-ubyte \(raw or .gz\) "
                                          rf"is not in '{tmp_path / 'mnist'}' \(put it there, or set download: true"):
        check_config(with_schema_defaults(cfg))
    del cfg["datasets"]["mnist"]
    (tmp_path / "cifar" / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match=r"^datasets.cifar10.path: CIFAR-10 file data_batch_3 is not in"):
        check_config(with_schema_defaults(cfg))


def test_downloaded_mnist_archives_are_named_after_their_files():
    """The download rule promises the four gzipped IDX files; each url must deliver one."""
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    cfg["datasets"]["mnist"]["urls"][1]["url"] = "https://example.org/mnist/labels.gz"
    with pytest.raises(ConfigError, match=r"^datasets.mnist.urls: no archive named train-labels-idx1-ubyte.gz"):
        check_config(with_schema_defaults(cfg))
