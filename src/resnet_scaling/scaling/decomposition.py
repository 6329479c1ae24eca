"""The trend/noise decomposition of one experiment's deepest networks (docs/maths.md §3): the
depth-averaged trend of the rescaled weights, the residual noise path, and the training loss of
the trend-only (denoised) weights.

The networks are read one at a time, twice — once for the trend (a mean over every pooled depth
and seed, kept as a running sum), once for the losses and the figure rows — so memory holds one
depth, not the pool: at the paper scale the pool of the seven deepest digits depths is GBs.
"""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from .weights import (
    INCLUDE_STATUS,
    TrainedWeights,
    entry_labels,
    included,
    load_training,
    quantity_sequences,
    top_entries,
    weight_path,
)


def cell_index(depth: int, n_cells: int) -> np.ndarray:
    """Cell j = ⌊n k / L⌋ of every layer k on a grid of ``n_cells`` cells of [0, 1]."""
    return (np.arange(depth) * n_cells) // depth


def block_means(X: np.ndarray, n_cells: int) -> np.ndarray:
    """Mean of X (S, L, ...) over the layers of each grid cell: (S, n_cells, ...); needs L ≥ n_cells."""
    L = X.shape[1]
    if L < n_cells:
        raise ValueError(f"depth {L} is smaller than the {n_cells} cells of the trend grid")
    # the cells are runs of consecutive layers: one sum per run (reduceat), then the mean
    starts = np.searchsorted(cell_index(L, n_cells), np.arange(n_cells))
    counts = np.diff(np.append(starts, L))
    sums = np.add.reduceat(X.reshape(X.shape[0], L, -1), starts, axis=1)
    return (sums / counts[None, :, None]).reshape(X.shape[0], n_cells, *X.shape[2:])


def denoise(X: np.ndarray, trend_cells: np.ndarray, beta: float) -> np.ndarray:
    """Trend-only weights X̄_k = L^{-β} Ā_{⌊n k/L⌋} for every seed, same shape as X (S, L, ...)."""
    L = X.shape[1]
    return np.broadcast_to(L ** -beta * trend_cells[cell_index(L, len(trend_cells))], X.shape).copy()


def noise_path(X: np.ndarray, denoised: np.ndarray, beta: float) -> np.ndarray:
    """Rescaled path of the residual, L^{β−1/2} Σ_{j<k} (X_j − X̄_j), k = 0..L: O(1) and
    Brownian-like when the residuals are i.i.d. of size L^{-β}."""
    L = X.shape[1]
    return L ** (beta - 0.5) * weight_path(X - denoised)


def decomposition_pair(w: TrainedWeights) -> tuple[str, str, np.ndarray]:
    """Which sequences are decomposed, and the δ that rebuilds the network from them.

    ReLU is positively homogeneous: δ relu(A h + b) = sign(δ) relu(|δ|A h + |δ|b), so for
    per-layer δ the pair (|δ|A, |δ|b) with δ' = sign δ is the same network. Otherwise (A, b)
    with the trained δ.
    """
    if w.delta_type == "multi" and w.activation == "relu":
        return "M_abs", "m_abs", np.sign(w.delta)
    return "A", "b", w.delta


def network_loss(A, b, delta, activation: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-seed training MSE of the networks with these weights (δ given layer by layer), in
    float64: the compiled loops of :mod:`..sde.compiled` where they build and apply (tanh, ReLU),
    else the training engine."""
    import torch

    from ..sde import compiled
    from ..sde.tensors import path_inputs
    from ..training.resnet import ResNetEnsemble

    lib = compiled.select("auto", activation)
    if lib is not None:
        A = np.asarray(A, dtype=np.float64)
        out = compiled.network_output(lib, A, b, delta, path_inputs(torch.as_tensor(np.asarray(x, dtype=np.float64)),
                                                                    A.shape[0], A.shape[-1]), activation)
        return (out - torch.as_tensor(np.asarray(y, dtype=np.float64))).pow(2).mean(dim=(1, 2)).numpy()
    net = ResNetEnsemble.from_numpy(A, b, delta, "multi", activation)
    net.select_engine("auto")  # the compiled loop over layers where it builds (docs/design.md)
    with torch.no_grad():
        return net.loss(torch.as_tensor(x), torch.as_tensor(y)).numpy()


def decompose(
    networks: Sequence[TrainedWeights | str | os.PathLike],
    betas: dict[str, float],
    data: tuple[np.ndarray, np.ndarray],
    n_cells: int,
    show_depths: int = 2,
    n_entries: int = 3,
    include_status=INCLUDE_STATUS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trend/noise decomposition of one experiment's deep networks and the loss of denoised weights.

    ``networks``: all depths ≥ n_cells to pool the trend over, as :class:`TrainedWeights` or as
    training outputs, which are read one at a time (twice: once for the trend, once for the
    losses), so that memory holds one depth, not the pool; ``betas``: exponent of each
    decomposed quantity; ``data``: the training inputs and targets. Returns the tidy
    decomposition of a few entries for the ``show_depths`` deepest depths (first included
    seed) and, per (depth, seed), the training loss with the trained and with the trend-only
    weights.
    """
    load = lambda item: item if isinstance(item, TrainedWeights) else load_training(item)
    # first pass: depths, masks and the sums of block means that make the trend (a mean)
    depth_of, masks, sums = {}, {}, {}
    for i, item in enumerate(networks):
        w = load(item)
        if w.depth < n_cells:
            continue
        qa, qb, _ = decomposition_pair(w)
        depth_of[i], masks[i] = w.depth, (included(w, include_status), w.finite)
        seqs = quantity_sequences(w)
        for which, mask in enumerate(masks[i]):
            for q in (qa, qb):
                if mask.any():
                    X = seqs[q][mask]
                    total, count = sums.get((which, q), (0.0, 0))
                    sums[which, q] = (total + block_means(X.shape[1] ** betas[q] * X, n_cells).sum(axis=0), count + len(X))
        del w, seqs
    if not depth_of:
        raise ValueError(f"no network is as deep as the {n_cells} cells of the trend grid")
    order = sorted(depth_of, key=depth_of.get)
    which = 0 if any(masks[i][0].any() for i in order) else 1
    if which == 1:
        warnings.warn(f"no network has a status in {list(include_status)}: drawing every finite network")
    if not any((which, q) in sums for q in (qa, qb)):
        raise ValueError("no network with finite weights to estimate the trend from")
    trends = {q: sums[which, q][0] / sums[which, q][1] for q in (qa, qb)}
    x, y = data
    loss_rows, shown = [], [i for i in order if masks[i][which].any()][-show_depths:]
    frames = []
    for i in order:
        k = masks[i][which]
        if not k.any():
            continue
        w = load(networks[i])
        seqs = quantity_sequences(w)
        _, _, delta = decomposition_pair(w)
        bars = {q: denoise(seqs[q][k], trends[q], betas[q]) for q in (qa, qb)}
        loss_rows.append(pd.DataFrame({
            "experiment": w.experiment, "depth": w.depth, "seed": w.seeds[k], "status": w.status[k],
            "loss_trained": network_loss(seqs[qa][k], seqs[qb][k], delta[k], w.activation, x, y),
            "loss_denoised": network_loss(bars[qa], bars[qb], delta[k], w.activation, x, y),
        }))
        if i in shown:
            frames += _decomposition_rows(w, seqs, k, (qa, qb), trends, betas, n_entries)
        del w, seqs, bars
    return pd.concat(frames, ignore_index=True), pd.concat(loss_rows, ignore_index=True)


def _decomposition_rows(w: TrainedWeights, seqs: dict, k: np.ndarray, pair: tuple[str, str], trends: dict,
                        betas: dict, n_entries: int) -> list[pd.DataFrame]:
    """The decomposition of the first included seed of one depth: weight, trend and noise path
    of the ``n_entries`` entries of each decomposed quantity whose trend varies most."""
    seed, L = int(np.flatnonzero(k)[0]), w.depth
    frames = []
    for q in pair:
        X = seqs[q][seed : seed + 1]
        bar = denoise(X, trends[q], betas[q])
        noise = noise_path(X, bar, betas[q])[0, 1:]  # the path after layer k, k = 0..L−1
        flat = top_entries(trends[q], n_entries)
        get = lambda a: a.reshape(L, -1)[:, flat].ravel()
        frames.append(pd.DataFrame({
            "experiment": w.experiment, "depth": L, "seed": w.seeds[seed], "quantity": q,
            "beta": betas[q], "entry": np.tile(entry_labels(X.shape[2:], flat), L),
            "k": np.repeat(np.arange(L), len(flat)), "t": np.repeat(np.arange(L) / L, len(flat)),
            "weight": L ** betas[q] * get(X[0]), "trend": L ** betas[q] * get(bar[0]),
            "noise": get(noise),
        }))
    return frames
