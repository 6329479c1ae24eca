"""Datasets of docs/maths.md §2: the generator's definition, the embedding, IDX reading errors, the affine floor."""

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from resnet_scaling.training import data
from resnet_scaling.training.data import affine_floor, dataset_affine_floor
from resnet_scaling.io import stable_seed, write_npz


def test_synthetic_generator_follows_its_definition():
    ds = data.make_synthetic(64, 16, dim=10, seed=3)
    assert ds["x_train"].shape == (64, 10) and ds["y_test"].shape == (16, 10)
    for key in ds:
        np.testing.assert_allclose(np.linalg.norm(ds[key], axis=1), 1.0, rtol=1e-12)
    # one sample by hand, scalar coefficients applied to every coordinate
    x = np.random.default_rng(0).uniform(-1, 1, size=10)
    z = x.copy()
    for n in range(100):
        z = z + 0.1 * np.tanh(math.sin(5 * math.pi * n / 100) * z + math.cos(5 * math.pi * n / 100))
    np.testing.assert_allclose(data.synthetic_targets(x[None])[0], z, rtol=1e-13)


def test_synthetic_inputs_are_uniform_before_normalisation():
    rng = np.random.default_rng(stable_seed("synthetic", 0))
    raw = rng.uniform(-1, 1, size=(200, 10))
    ds = data.make_synthetic(150, 50, seed=0)
    np.testing.assert_allclose(ds["x_train"], raw[:150] / np.linalg.norm(raw[:150], axis=1, keepdims=True))


def test_datasets_are_deterministic_and_seeded():
    a, b = data.make_synthetic(32, 8, seed=1), data.make_synthetic(32, 8, seed=1)
    c = data.make_synthetic(32, 8, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x_train"], c["x_train"])


def test_digits_embedding():
    ds = data.make_digits(100, 20, seed=0)
    assert ds["x_train"].shape == (100, 25)
    np.testing.assert_allclose(np.linalg.norm(ds["x_train"], axis=1), 1.0, rtol=1e-12)
    # one-hot targets in the first 10 of 25 coordinates
    assert np.all(ds["y_train"][:, 10:] == 0) and np.all(ds["y_train"].sum(axis=1) == 1)
    again = data.make_digits(100, 20, seed=0)
    assert np.array_equal(ds["x_test"], again["x_test"])


def test_feature_map_shape_is_28_to_5x5():
    images = np.random.default_rng(0).uniform(size=(3, 28, 28))
    assert data.random_feature_map(images, seed=0).shape == (3, 25)


def _write_idx(path, array, compress=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def _write_mnist(folder, n_train=30, n_test=12, compress=False):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    files = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = rng.integers(0, 10, size=n)
        for kind, arr, ndim in (("images", images, 3), ("labels", labels, 1)):
            path = folder / f"{split}-{kind}-idx{ndim}-ubyte{suffix}"
            _write_idx(path, arr, compress)
            files[(split, kind)] = (path, arr)
    return files


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_idx_files(tmp_path, compress):
    files = _write_mnist(tmp_path, compress=compress)
    path, images = files[("train", "images")]
    assert np.array_equal(data.read_idx(path), images)
    ds = data.make_mnist(tmp_path, 20, 10, seed=0)
    assert ds["x_train"].shape == (20, 25) and ds["y_test"].shape == (10, 25)
    labels = files[("t10k", "labels")][1]
    assert set(np.argmax(ds["y_test"], axis=1)) <= set(labels)


def test_missing_mnist_file_is_named(tmp_path):
    files = _write_mnist(tmp_path)
    files[("t10k", "labels")][0].unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.make_mnist(tmp_path, 20, 10)


def test_truncated_mnist_file_is_named(tmp_path):
    files = _write_mnist(tmp_path)
    path = files[("train", "images")][0]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="corrupt MNIST file .*train-images-idx3-ubyte"):
        data.make_mnist(tmp_path, 20, 10)


@pytest.mark.parametrize("bad_label", [12, 24, 25, 255])
def test_mnist_labels_outside_the_digits_name_the_file(tmp_path, bad_label):
    """Labels 10-24 would become one-hot targets in coordinates 10-24 of the feature width,
    labels >= 25 an IndexError; both are a damaged label file."""
    files = _write_mnist(tmp_path)
    path, labels = files[("train", "labels")]
    labels = labels.copy()
    labels[7] = bad_label
    _write_idx(path, labels)
    with pytest.raises(ValueError, match=rf"MNIST file .*train-labels-idx1-ubyte has 1 label\(s\) outside the digits 0..9 "
                                         rf"\(largest {bad_label}\)"):
        data.make_mnist(tmp_path, 20, 10)


def test_one_hot_targets_refuse_labels_outside_the_digits():
    np.testing.assert_array_equal(data.one_hot_targets(np.array([0, 9]), dim=12)[:, [0, 9]], np.eye(2))
    with pytest.raises(ValueError, match=r"labels outside 0..9 \(found 0..10\)"):
        data.one_hot_targets(np.array([0, 10]))


def test_mnist_file_of_the_wrong_kind_is_named(tmp_path):
    """A label file (IDX magic 0x00000801) where the test images belong."""
    files = _write_mnist(tmp_path)
    labels_path, labels = files[("t10k", "labels")]
    _write_idx(files[("t10k", "images")][0], labels)
    with pytest.raises(ValueError, match=r"MNIST file .*t10k-images-idx3-ubyte holds an array of shape \(12,\); "
                                         r"an image file holds N × 28 × 28 bytes \(IDX magic 0x00000803\)"):
        data.make_mnist(tmp_path, 20, 10)


def test_mnist_images_of_the_wrong_shape_are_named(tmp_path):
    files = _write_mnist(tmp_path)
    _write_idx(files[("train", "images")][0], np.zeros((30, 27, 27)))
    with pytest.raises(ValueError, match=r"MNIST file .*train-images-idx3-ubyte holds an array of shape \(30, 27, 27\)"):
        data.make_mnist(tmp_path, 20, 10)


def test_mnist_labels_of_another_count_name_both_files(tmp_path):
    files = _write_mnist(tmp_path)
    path, labels = files[("train", "labels")]
    _write_idx(path, labels[:-1])
    with pytest.raises(ValueError, match=r"MNIST file .*train-labels-idx1-ubyte has 29 labels for the 30 images of "
                                         r".*train-images-idx3-ubyte: the two files do not belong together"):
        data.make_mnist(tmp_path, 20, 10)


REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST not found in {REAL_MNIST} (CI provides it)")
def test_real_mnist_reads_as_its_known_facts():
    """The facts the standard files satisfy (LeCun et al.): sizes, first labels, label counts."""
    parts = data.read_mnist(REAL_MNIST)
    assert parts["train_images"].shape == (60000, 28, 28) and parts["test_images"].shape == (10000, 28, 28)
    assert parts["train_labels"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(parts["train_labels"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(parts["test_labels"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_garbage_gzip_is_named(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"not a gzip file at all")
    with pytest.raises(ValueError, match="corrupt MNIST file"):
        data.read_idx(path)


def test_affine_floor_is_the_mean_square_of_the_part_no_affine_map_reaches():
    """y = W x + c + e with e orthogonal to the inputs and the constant: the floor is mean(e²) exactly."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5))
    design = np.column_stack([x, np.ones(len(x))])
    noise = rng.normal(size=(200, 4))
    noise -= design @ np.linalg.lstsq(design, noise, rcond=None)[0]  # project out span{x, 1}
    y_affine = x @ rng.normal(size=(5, 4)) + rng.normal(size=4)
    assert affine_floor(x, y_affine) < 1e-24
    assert np.isclose(affine_floor(x, y_affine + noise), np.mean(noise**2), rtol=1e-10, atol=0)


def test_affine_floor_of_a_dataset_file_names_a_missing_array(tmp_path):
    write_npz(tmp_path / "d.npz", x_train=np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"d\.npz: no y_train"):
        dataset_affine_floor(tmp_path / "d.npz")


def test_gaussian_data_are_standard_normal_and_seeded():
    """Marion et al.'s data: inputs and targets with independent N(0, 1) entries, not normalised."""
    a = data.make_dataset({"kind": "gaussian", "n_train": 3000, "n_test": 100, "dim": 16}, seed=0)
    b = data.make_dataset({"kind": "gaussian", "n_train": 3000, "n_test": 100, "dim": 16}, seed=0)
    assert a["x_train"].shape == (3000, 16) and a["y_test"].shape == (100, 16)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        assert abs(a[key].mean()) < 0.05 and abs(a[key].std() - 1) < 0.05 or key.endswith("test")
    assert not np.allclose(np.linalg.norm(a["x_train"], axis=1), 1.0)
    assert abs(np.corrcoef(a["x_train"][:, 0], a["y_train"][:, 0])[0, 1]) < 0.1  # targets independent of inputs


NONLINEAR = dict(radius=3.0, gain=3.0, speed=1.0)


def _config_dataset(name):
    """A ``datasets:`` entry of the default config and the ε of the experiments that train on it."""
    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    eps = {exp["epsilon"] for exp in config["experiments"].values() if exp.get("dataset") == name}
    return config["datasets"][name], eps


def test_nonlinear_generator_follows_its_definition():
    """x of norm R; W ~ N(0, (g/(R√d))²), c ~ N(0, 1) from the teacher's own generator; 100 Euler
    steps of z ← z + (s/100) tanh(W z + c); y = z_100 not normalised (docs/maths.md §2)."""
    ds = data.make_nonlinear(64, 16, dim=10, seed=3, **NONLINEAR)
    assert ds["x_train"].shape == (64, 10) and ds["y_test"].shape == (16, 10)
    for key in ("x_train", "x_test"):
        np.testing.assert_allclose(np.linalg.norm(ds[key], axis=1), 3.0, rtol=1e-12)
    rng = np.random.default_rng(stable_seed("nonlinear", "teacher", 3))
    W = rng.standard_normal((10, 10)) * 3.0 / (3.0 * math.sqrt(10))
    c = rng.standard_normal(10)
    z = ds["x_test"][5].copy()
    for _ in range(100):
        z = z + 0.01 * np.tanh(W @ z + c)
    np.testing.assert_allclose(ds["y_test"][5], z, rtol=1e-12)
    raw = np.random.default_rng(stable_seed("nonlinear", "inputs", 3)).uniform(-1, 1, size=(80, 10))
    np.testing.assert_allclose(ds["x_train"], 3.0 * raw[:64] / np.linalg.norm(raw[:64], axis=1, keepdims=True))


def test_nonlinear_teacher_weights_have_the_documented_scale():
    """Entries of W have standard deviation g/(R√d), so (W x)_i has standard deviation g/√d at ‖x‖ = R."""
    W, c = data.nonlinear_teacher(200, seed=0, radius=3.0, gain=3.0)
    assert abs(W.std() / (3.0 / (3.0 * math.sqrt(200))) - 1) < 0.02 and abs(W.mean()) < 0.005
    assert abs(c.std() - 1) < 0.15
    x = data.make_nonlinear(2000, 10, dim=200, seed=0, **NONLINEAR)["x_train"]
    assert abs((x @ W.T).std() / (3.0 / math.sqrt(200)) - 1) < 0.05


def test_nonlinear_data_are_deterministic_seeded_and_the_teacher_ignores_the_sample_counts():
    a, b = data.make_nonlinear(32, 8, seed=1, **NONLINEAR), data.make_nonlinear(32, 8, seed=1, **NONLINEAR)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = data.make_nonlinear(32, 8, seed=2, **NONLINEAR)
    assert not np.array_equal(a["x_train"], c["x_train"])
    W1, _ = data.nonlinear_teacher(10, 1, 3.0, 3.0)
    W2, _ = data.nonlinear_teacher(10, 2, 3.0, 3.0)
    assert not np.allclose(W1, W2)
    # more samples: the same first inputs, the same teacher, hence the same first targets
    more = data.make_nonlinear(64, 8, seed=1, **NONLINEAR)
    np.testing.assert_array_equal(more["x_train"][:32], a["x_train"])
    np.testing.assert_array_equal(more["y_train"][:32], a["y_train"])


def test_nonlinear_data_of_the_config_need_the_nonlinearity():
    """The config's nonlinear data: ℓ_aff ≥ 10 ε (an affine map cannot converge), the targets owe at
    least 10 % of their norm to the nonlinearity, and their scale is that of the inputs."""
    from resnet_scaling.scaling.outputs import non_affine_share

    spec, eps = _config_dataset("nonlinear")
    assert spec["kind"] == "nonlinear" and eps
    ds = data.make_dataset(spec, seed=0)
    assert ds["x_train"].shape == (spec["n_train"], spec["dim"]) and ds["x_test"].shape == (spec["n_test"], spec["dim"])
    floor = affine_floor(ds["x_train"], ds["y_train"])
    assert floor >= 10 * max(eps), floor
    for seed in (1, 2, 3):
        other = data.make_dataset(spec, seed=seed)
        assert affine_floor(other["x_train"], other["y_train"]) >= 10 * max(eps)
    assert non_affine_share(ds["x_test"], ds["y_test"]) > 0.1
    # the affine floor is not an artefact of overfitting: the training fit does as badly on the test set
    design = np.column_stack([ds["x_train"], np.ones(len(ds["x_train"]))])
    coef = np.linalg.lstsq(design, ds["y_train"], rcond=None)[0]
    test_mse = np.mean((np.column_stack([ds["x_test"], np.ones(len(ds["x_test"]))]) @ coef - ds["y_test"]) ** 2)
    assert 0.7 * floor < test_mse < 1.5 * floor
    norms = np.linalg.norm(ds["y_train"], axis=1)
    assert spec["radius"] / 2 < norms.mean() < 2 * spec["radius"]


def test_nonlinear_data_need_their_teacher_parameters():
    from resnet_scaling.config import schema_error

    config = {"seed": 0, "experiments": {},
              "datasets": {"n": {"kind": "nonlinear", "n_train": 8, "n_test": 4, "radius": 3.0, "gain": 3.0}}}
    assert "speed" in (schema_error(config) or "")
    config["datasets"]["n"]["speed"] = 1.0
    assert schema_error(config) is None
