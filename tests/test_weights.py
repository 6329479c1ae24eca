"""Layer sequences read from training outputs, and weight paths (docs/maths.md §1)."""

import struct
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import scaling_problems as sp
from resnet_scaling.io import read_npz, write_npz
from resnet_scaling.training.resnet import ResNetEnsemble
from resnet_scaling.scaling.weights import (
    TrainedWeights,
    effective_weights,
    extract,
    from_training,
    layer_norms,
    layer_table,
    load_training,
    paths_table,
    quantity_sequences,
    weight_path,
)


def test_effective_weights_and_paths_by_definition():
    rng = np.random.default_rng(0)
    A, b, delta = rng.normal(size=(2, 5, 3, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5))
    M, m = effective_weights(A, b, delta)
    W = weight_path(M)
    for s in range(2):
        for k in range(5):
            np.testing.assert_allclose(M[s, k], delta[s, k] * A[s, k])
            np.testing.assert_allclose(m[s, k], delta[s, k] * b[s, k])
        for k in range(6):
            np.testing.assert_allclose(W[s, k], sum((M[s, j] for j in range(k)), np.zeros((3, 3))))
    np.testing.assert_allclose(layer_norms(M)[1, 2], np.linalg.norm(M[1, 2]))


@pytest.mark.parametrize("delta_type", ["shared", "multi", "none"])
def test_files_are_in_the_paper_convention(delta_type):
    """h_{k+1} = h_k + δ_k tanh(A_k h_k + b_k) with the extracted column-vector A_k, b_k, δ_k
    reproduces the network's own forward pass."""
    net = ResNetEnsemble.initialise(7, 4, range(3), delta_type=delta_type, init="xavier", init_sd=1.0,
                                    activation="tanh", dtype=torch.float64)
    arrays = net.to_numpy()
    w = from_training(arrays, {"experiment": "e", "depth": 7, "config": {"delta": delta_type, "activation": "tanh"}})
    x = np.random.default_rng(1).normal(size=(5, 4))
    h = np.broadcast_to(x, (3, 5, 4)).copy()
    for k in range(7):
        z = np.einsum("sij,snj->sni", w.A[:, k], h) + w.b[:, k, None, :]
        h = h + w.delta[:, k, None, None] * np.tanh(z)
    np.testing.assert_allclose(h, net.forward(torch.as_tensor(x)).numpy(), rtol=1e-12, atol=1e-12)


def test_extract_writes_only_the_layer_table(tmp_path):
    train = tmp_path / "train.npz"
    sp.write_training_output(train, "smooth", 12, seeds=3, dim=4, experiment="exp1",
                             status=["converged", "stopped", "diverged"], epochs=4, max_epochs=10)
    w = extract(train, tmp_path / "layers.csv")
    # the weights are not copied: the training output and the table are all there is
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.csv", "train.npz"]
    arrays, _ = read_npz(train)
    np.testing.assert_array_equal(w.A, arrays["A"])
    np.testing.assert_array_equal(w.status, ["converged", "stopped", "diverged"])
    assert (w.experiment, w.depth, w.delta_type) == ("exp1", 12, "shared")
    # final losses: the last finite entry of each padded history
    np.testing.assert_allclose(w.losses["train_loss"][0], arrays["train_loss"][0, -2])
    np.testing.assert_allclose(w.losses["train_loss"][1:], arrays["train_loss"][1:, -1])
    M = arrays["A"] * arrays["delta"][..., None, None]
    np.testing.assert_allclose(weight_path(quantity_sequences(w)["M"])[:, -1], M.sum(axis=1))
    np.testing.assert_allclose(quantity_sequences(w)["M"], M)

    table = pd.read_csv(tmp_path / "layers.csv")
    assert len(table) == 3 * 12 * 5  # seeds × layers × (A, b, delta, M, m)
    a = table[(table["quantity"] == "A") & (table["seed"] == 1)].sort_values("k")
    np.testing.assert_allclose(a["norm"], np.linalg.norm(arrays["A"][1], axis=(1, 2)))
    np.testing.assert_allclose(a["increment"].iloc[:-1],
                               np.linalg.norm(np.diff(arrays["A"][1], axis=0), axis=(1, 2)))
    assert np.isnan(a["increment"].iloc[-1]) and a["t"].iloc[3] == pytest.approx(3 / 12)
    assert table["status"].tolist()[::12][:3] == ["converged", "stopped", "diverged"]


def test_statuses_pass_through_extraction(tmp_path):
    """Every trainer status, max_epochs (not converged) included, survives extraction."""
    sp.write_training_output(tmp_path / "t.npz", "brownian", 6, seeds=4, dim=2, epochs=[10, 7, 10, 10],
                             status=["max_epochs", "stopped", "converged", "diverged"], max_epochs=10)
    w = extract(tmp_path / "t.npz", tmp_path / "l.csv")
    assert w.status.tolist() == ["max_epochs", "stopped", "converged", "diverged"]
    assert load_training(tmp_path / "t.npz").status.tolist() == w.status.tolist()
    np.testing.assert_array_equal(w.epochs, [10, 7, 10, 10])


def _damage_member(path, member: str) -> None:
    """Flip one byte inside the stored data of one array of an .npz (its CRC then fails)."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(member).header_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
        at = offset + 30 + name_len + extra_len + 200  # past the .npy header, inside the values
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_load_training_leaves_the_initial_weights_unread(tmp_path):
    """The analysis reads the trained networks only: a damaged initial-weights array, which a
    full read refuses, does not matter, and the networks equal those of a full read."""
    path = tmp_path / "depth_16.npz"
    sp.write_training_output(path, "brownian", 16, seeds=3, dim=5, status=["converged", "stopped", "diverged"])
    full = from_training(*read_npz(path))
    _damage_member(path, "A_init.npy")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_npz(path)
    w = load_training(path)
    for name in ("A", "b", "delta", "seeds", "status", "epochs"):
        np.testing.assert_array_equal(getattr(w, name), getattr(full, name), err_msg=name)
    assert w.losses.keys() == full.losses.keys()
    for name in w.losses:
        np.testing.assert_array_equal(w.losses[name], full.losses[name])
    assert (w.experiment, w.depth, w.delta_type, w.activation, w.dataset) == (
        full.experiment, full.depth, full.delta_type, full.activation, full.dataset)
    # the same with the names of the arrays to leave out
    arrays, meta = read_npz(path, exclude=["A_init", "b_init", "delta_init"])
    assert not {"A_init", "b_init", "delta_init"} & set(arrays) and meta["depth"] == 16


@pytest.mark.parametrize("damage", ["truncated", "not_an_archive", "damaged_weights"])
def test_a_corrupt_training_output_gives_one_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "depth_8.npz"
    sp.write_training_output(path, "smooth", 8, seeds=2, dim=3)
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "not_an_archive":
        path.write_text("not an npz")
    else:
        _damage_member(path, "A.npy")
    with pytest.raises(ValueError) as info:
        load_training(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert f"delete {path} and rerun" in message


def test_training_output_must_say_its_delta_type(tmp_path):
    A = np.zeros((1, 3, 2, 2))
    write_npz(tmp_path / "bad.npz", metadata={"depth": 3, "config": {"activation": "tanh"}},
              A=A, b=np.zeros((1, 3, 2)), delta=np.ones((1, 3)))

    with pytest.raises(ValueError, match="config.delta"):
        load_training(tmp_path / "bad.npz")


def test_quantities_per_delta_type():
    w = sp.network("brownian", 6, seeds=2, dim=3)
    assert list(quantity_sequences(w)) == ["A", "b", "M", "m"]
    w.delta_type, w.delta = "multi", -np.abs(np.random.default_rng(0).normal(size=(2, 6)))
    q = quantity_sequences(w)
    assert list(q) == ["A", "b", "delta", "M", "m", "M_abs", "m_abs"]
    np.testing.assert_allclose(q["M_abs"], -q["M"])
    assert layer_table(w)["quantity"].nunique() == 7


def test_paths_table():
    nets = [sp.network("brownian", L, seeds=3, dim=4, status=["diverged", "converged", "converged"]) for L in (8, 16, 32)]
    table = paths_table(nets, {"A": 0.5, "M": 0.5}, n_entries=2, n_depths=2)
    assert set(table["series"]) == {"entry", "norm", "path"}
    path = table[(table["series"] == "path") & (table["depth"] == 32)]
    assert set(path["seed"]) == {1}  # the first included seed
    entry = path["entry"].iloc[0]
    i, j = eval(entry)
    end = path[(path["entry"] == entry) & (path["k"] == 32)]["value"].iloc[0]
    assert end == pytest.approx(nets[-1].A[1, :, i, j].sum())
    assert set(table.loc[table["series"] == "path", "depth"]) == {16, 32}
    norm = table[table["series"] == "norm"].sort_values("k")["value"].to_numpy()
    np.testing.assert_allclose(norm, 32**0.5 * np.linalg.norm(nets[-1].A[1], axis=(1, 2)))


def test_figures_fall_back_to_finite_networks_when_none_passes_the_status_filter():
    nets = [sp.network("brownian", L, seeds=2, dim=3, status=["max_epochs", "max_epochs"]) for L in (8, 16)]
    nets[1].A[0, 0, 0, 0] = np.inf
    with pytest.warns(UserWarning, match="every finite network"):
        table = paths_table(nets, {"A": 0.5, "M": 0.5}, n_entries=1, n_depths=2)
    assert table.loc[table["depth"] == 16, "seed"].unique().tolist() == [1]  # seed 0 is not finite


def test_a_training_output_under_another_ones_name_is_refused_naming_it(tmp_path):
    """A valid file copied over another (depth_8.npz onto depth_16.npz) holds the depth and
    experiment of its origin: the reader compares them with its name and names the file."""
    folder = tmp_path / "results" / "train" / "exp"
    for L in (8, 16):
        sp.write_training_output(folder / f"depth_{L}.npz", "smooth", L, seeds=2, dim=3)
    assert load_training(folder / "depth_16.npz").depth == 16
    (folder / "depth_16.npz").write_bytes((folder / "depth_8.npz").read_bytes())
    with pytest.raises(ValueError) as info:
        load_training(folder / "depth_16.npz")
    path = folder / "depth_16.npz"
    assert str(info.value) == (
        f"{path} holds experiment 'exp' at depth 8, not experiment 'exp' at depth 16 as its name says "
        f"(copied or moved?); delete {path} and rerun the workflow to rebuild it")
    other = tmp_path / "results" / "train" / "other" / "depth_8.npz"
    other.parent.mkdir()
    other.write_bytes((folder / "depth_8.npz").read_bytes())
    with pytest.raises(ValueError, match="holds experiment 'exp' at depth 8, not experiment 'other' at depth 8"):
        load_training(other)
