"""The trend/noise decomposition (scaling/decomposition.py): trend-only networks decompose
into their trend with no noise, files give the numbers of networks in memory, and the trend is
the mean over every pooled depth and seed."""

import numpy as np
import pandas as pd
import pytest

import scaling_problems as sp
from resnet_scaling.scaling.decomposition import decompose
from resnet_scaling.scaling.weights import TrainedWeights, block_means, cell_index, included, load_training


def _trend_only_networks(delta_type: str, activation: str, depths=(16, 32), n_cells=8, seeds=2, beta=0.5):
    """Networks whose decomposed pair is exactly L^{-β}(Ā, b̄) on the cells: (A, b) for shared δ;
    (|δ|A, |δ|b) for per-layer δ of random signs and sizes."""
    rng = np.random.default_rng(4)
    Abar, bbar = rng.normal(size=(n_cells, 3, 3)), rng.normal(size=(n_cells, 3))
    nets = []
    for L in depths:
        cells = (np.arange(L) * n_cells) // L
        A = np.broadcast_to(L**-beta * Abar[cells], (seeds, L, 3, 3)).copy()
        b = np.broadcast_to(L**-beta * bbar[cells], (seeds, L, 3)).copy()
        if delta_type == "multi":
            delta = rng.choice([-1.0, 1.0], size=(seeds, L)) * rng.uniform(0.5, 2.0, size=(seeds, L)) / L
            A, b = A / np.abs(delta)[..., None, None], b / np.abs(delta)[..., None]
        else:
            delta = np.full((seeds, L), 1.0 / L)
        nets.append(TrainedWeights(A, b, delta, np.arange(seeds), np.array(["converged"] * seeds), "e", L,
                                   delta_type, activation))
    return nets


@pytest.mark.parametrize("delta_type,activation,pair", [("shared", "tanh", ("A", "b")), ("multi", "relu", ("M_abs", "m_abs"))])
def test_decompose_trend_only_networks(delta_type, activation, pair):
    nets = _trend_only_networks(delta_type, activation)
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(20, 3)), rng.normal(size=(20, 3)))
    betas = {q: 0.5 for q in pair}
    decomposition, losses = decompose(nets, betas, data, n_cells=8, show_depths=1, n_entries=2)
    np.testing.assert_allclose(losses["loss_denoised"], losses["loss_trained"], rtol=1e-10)
    assert set(decomposition["quantity"]) == set(pair) and set(decomposition["depth"]) == {32}
    np.testing.assert_allclose(decomposition["weight"], decomposition["trend"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(decomposition["noise"], 0.0, atol=1e-10)
    assert len(losses) == 4 and (decomposition.groupby("quantity")["entry"].nunique() == 2).all()


def test_decompose_reads_training_outputs_one_at_a_time_with_the_same_numbers(tmp_path):
    """Given files, the decomposition holds one depth at a time and gives the tables it gives
    for the networks in memory; the trend is the mean over every pooled (depth, seed)."""
    paths = []
    for L in (64, 16, 32):  # out of order: the depths are sorted
        paths.append(tmp_path / "exp" / f"depth_{L}.npz")
        paths[-1].parent.mkdir(exist_ok=True)
        sp.write_training_output(paths[-1], "brownian", L, seeds=3, dim=3,
                                 status=["converged", "diverged", "stopped"])
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(10, 3)), rng.normal(size=(10, 3)))
    betas = {"A": 0.5, "b": 0.5}
    from_files = decompose([str(p) for p in paths], betas, data, n_cells=8, show_depths=2, n_entries=2)
    in_memory = decompose([load_training(p) for p in paths], betas, data, n_cells=8, show_depths=2, n_entries=2)
    for got, want in zip(from_files, in_memory):
        pd.testing.assert_frame_equal(got, want)
    decomposition, losses = from_files
    assert list(losses["depth"].unique()) == [16, 32, 64] and set(losses["status"]) == {"converged", "stopped"}
    assert set(decomposition["depth"]) == {32, 64}
    # the trend: block means of L^β A over the included seeds of every depth, averaged
    nets = [load_training(p) for p in paths]
    pooled = np.concatenate([block_means(w.depth ** 0.5 * w.A[included(w)], 8) for w in nets])
    deepest = decomposition[(decomposition["depth"] == 64) & (decomposition["quantity"] == "A")]
    k = deepest["k"].to_numpy()
    entry = deepest["entry"].iloc[0]
    row = deepest[deepest["entry"] == entry]
    index = tuple(int(i) for i in entry.strip("()").split(","))
    np.testing.assert_allclose(row["trend"], pooled.mean(axis=0)[(cell_index(64, 8)[row["k"].to_numpy()], *index)],
                               rtol=1e-12)
    assert len(k)


def test_decompose_needs_deep_enough_networks():
    with pytest.raises(ValueError, match="cells"):
        decompose([sp.network("smooth", 16)], {"A": 0.3, "b": 0.3}, (None, None), n_cells=32)


