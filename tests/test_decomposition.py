"""The trend/noise decomposition (scaling/decomposition.py): trend-only networks decompose
into their trend with no noise, files give the numbers of networks in memory, and the trend is
the mean over every pooled depth and seed."""

import numpy as np
import pandas as pd
import pytest

import scaling_problems as sp
from resnet_scaling.scaling.decomposition import (
    block_means,
    cell_index,
    decompose,
    denoise,
    network_loss,
    noise_path,
)
from resnet_scaling.scaling.weights import TrainedWeights, effective_weights, included, load_training


def pooled_trend(sequences, beta, n_cells):
    """The trend by its definition (docs/references.md, the trend/noise decomposition): the mean over depths and seeds of the block
    means of L^β X_k."""
    return np.concatenate([block_means(X.shape[1] ** beta * X, n_cells) for X in sequences]).mean(axis=0)


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


@pytest.mark.parametrize("L", [40, 43])
def test_trend_of_trend_only_weights_is_exact(L):
    """X_k = L^{-β} Ā_{⌊nk/L⌋} for piecewise-constant Ā: the trend is Ā, denoising changes
    nothing and the noise path is zero (also when L is not a multiple of the cells)."""
    n, beta = 8, 0.4
    Abar = np.random.default_rng(3).normal(size=(n, 2, 2))
    X = np.broadcast_to(L**-beta * Abar[(np.arange(L) * n) // L], (3, L, 2, 2)).copy()
    other = np.broadcast_to(80**-beta * Abar[(np.arange(80) * n) // 80], (2, 80, 2, 2)).copy()
    est = pooled_trend([X, other], beta, n)
    np.testing.assert_allclose(est, Abar, rtol=1e-12)
    np.testing.assert_allclose(denoise(X, est, beta), X, rtol=1e-12)
    np.testing.assert_allclose(noise_path(X, denoise(X, est, beta), beta), 0.0, atol=1e-12)
    np.testing.assert_allclose(block_means(X, n)[0], L**-beta * Abar, rtol=1e-12)


def test_noise_path_of_iid_residuals_has_unit_variance():
    """X_k = L^{-β}(Ā + ξ_k), ξ i.i.d. N(0, 1): the rescaled noise path at t = 1 is
    L^{-1/2} Σ_k ξ_k minus the pooled trend's share; with N networks pooled its variance
    is 1 − 1/N."""
    L, n, beta, N = 256, 16, 0.5, 8
    rng = np.random.default_rng(7)
    X = L**-beta * (1.0 + rng.normal(size=(N, L, 10, 10)))
    bar = denoise(X, pooled_trend([X], beta, n), beta)
    end = noise_path(X, bar, beta)[:, -1]
    assert end.var() == pytest.approx(1 - 1 / N, rel=0.12)


def test_relu_rebuild_from_absolute_delta_is_the_same_network():
    """δ relu(Ah + b) = sign(δ) relu(|δ|Ah + |δ|b): the pair the decomposition rebuilds from."""
    rng = np.random.default_rng(2)
    A, b, delta = rng.normal(size=(2, 9, 3, 3)), rng.normal(size=(2, 9, 3)), rng.normal(size=(2, 9))
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 3))
    Mabs, mabs = effective_weights(A, b, np.abs(delta))
    np.testing.assert_allclose(network_loss(Mabs, mabs, np.sign(delta), "relu", x, y),
                               network_loss(A, b, delta, "relu", x, y), rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_network_loss_is_the_training_engines_mse(activation):
    """The loss of the compiled loops (sde.compiled) against the training engine's evaluation pass."""
    import torch

    from resnet_scaling.training.resnet import ResNetEnsemble

    rng = np.random.default_rng(4)
    S, L, d, N = 3, 30, 6, 50
    A, b = rng.normal(size=(S, L, d, d)) / d, rng.normal(size=(S, L, d)) * 0.2
    delta = rng.normal(size=(S, L)) / L
    x, y = rng.normal(size=(N, d)), rng.normal(size=(N, d))
    net = ResNetEnsemble.from_numpy(A, b, delta, "multi", activation)
    with torch.no_grad():
        want = net.loss(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(network_loss(A, b, delta, activation, x, y), want, rtol=1e-12)


@pytest.mark.parametrize("L, n_cells", [(50, 50), (137, 50), (9, 4)])
def test_block_means_are_the_means_over_each_cells_layers(L, n_cells):
    from resnet_scaling.scaling.decomposition import block_means, cell_index

    X = np.random.default_rng(L).normal(size=(3, L, 2, 2))
    cells = cell_index(L, n_cells)
    want = np.stack([X[:, cells == j].mean(axis=1) for j in range(n_cells)], axis=1)
    np.testing.assert_allclose(block_means(X, n_cells), want, rtol=1e-13, atol=1e-15)
