"""What a trained network computes on its test inputs, and how far that is from an affine map.

The non-affine share of a network's output (docs/maths.md §2) is

    ‖h_L(X) − (X W + c)‖_F / ‖h_L(X)‖_F,

with X the test inputs (rows), h_L(X) the outputs and X W + c the least-squares affine fit of
those outputs on the inputs. It is 0 for a network that acts as an affine map on its inputs
(every block in the linear range of its activation, or every ReLU unit on or off for all
inputs), and it says how much of what the network outputs it owes to its nonlinearity. An
exponent of such a network describes a near-affine map: the outcome table says so.
"""

from __future__ import annotations

import numpy as np
import torch

from ..sde import compiled
from ..sde.tensors import path_inputs
from ..training.resnet import ResNetEnsemble
from .weights import select_seeds

#: Test inputs the share is measured on (the first of the test set); enough for a d ≤ 25 fit.
N_INPUTS = 256


def affine_residual(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` minus its least-squares affine fit on ``x``: x (N, d_in), out (..., N, d_out),
    the fit taken separately for every leading index."""
    x = np.asarray(x, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    # the projection onto the column space of [x, 1], shared by every leading index
    q, _ = np.linalg.qr(design)
    return out - q @ (np.swapaxes(q, 0, 1) @ out)


def non_affine_share(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """‖out − affine fit‖ / ‖out‖ (Frobenius over inputs and coordinates), per leading index."""
    out = np.asarray(out, dtype=np.float64)
    residual = affine_residual(x, out)
    norm = np.sqrt((out**2).sum(axis=(-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((residual**2).sum(axis=(-1, -2))) / norm


def network_outputs(w, x: np.ndarray) -> np.ndarray:
    """h_L of every seed of a :class:`resnet_scaling.scaling.weights.TrainedWeights` on inputs x (N, d):
    (S, N, d), in float64: the compiled loops of :mod:`..sde.compiled` where they build and
    apply (tanh, ReLU), else the training engine."""
    lib = compiled.select("auto", w.activation)
    if lib is not None:
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        return compiled.network_output(lib, w.A, w.b, w.delta, path_inputs(x, w.A.shape[0], w.A.shape[-1]),
                                       w.activation).numpy()
    net = ResNetEnsemble.from_numpy(w.A, w.b, w.delta, "multi", w.activation)
    net.select_engine("auto")  # the compiled loop over layers where it builds (docs/design.md)
    with torch.no_grad():
        return net.forward(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()


def network_non_affine_share(w, x_test: np.ndarray, n_inputs: int = N_INPUTS) -> np.ndarray:
    """(S,) non-affine share of each seed's output on the first ``n_inputs`` test inputs (NaN
    for a network with non-finite weights)."""
    x = np.asarray(x_test, dtype=np.float64)[:n_inputs]
    share = np.full(len(w.seeds), np.nan)
    finite = np.asarray(w.finite, bool)
    if finite.any():
        share[finite] = non_affine_share(x, network_outputs(select_seeds(w, finite), x))
    return share
