"""The Epanechnikov smoother of layer sequences in t (docs/maths.md §4, trained networks).

Layer k of L sits at t = (k + ½)/L. Around a time t the weights are ``K((c − t)/bw)`` with
``K(u) = ¾(1 − u²)₊``, normalised to sum 1: near 0 and 1 the window is cut and the weights
renormalise over what is left. One rule for an empty window (no centre within ``bw`` of t,
possible only when bw < 1/(2L)): the nearest centre gets all the weight (the first of two at
equal distance). A caller that wants every window to hold layers widens the bandwidth itself.
"""

from __future__ import annotations

import torch

from .tensors import DTYPE, as_tensor


def layer_centres(L: int) -> torch.Tensor:
    """The times (k + ½)/L of the L layers, (L,)."""
    return (torch.arange(L, dtype=DTYPE) + 0.5) / L


def epanechnikov_matrix(ts, centres: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Kernel weights (T, K) of the ``centres`` around each time of ``ts``, rows summing to 1."""
    ts = as_tensor(ts).reshape(-1)
    dist = centres.unsqueeze(0) - ts.unsqueeze(1)
    u = dist / bandwidth
    w = (1 - u * u).clamp_min(0.0)
    empty = w.sum(1) == 0.0
    if bool(empty.any()):
        rows = torch.nonzero(empty).flatten()
        w[rows, dist[rows].abs().argmin(1)] = 1.0
    return w / w.sum(1, keepdim=True)


def epanechnikov_weights(t: float, centres: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Kernel weights (K,) of the ``centres`` around one time t, summing to 1."""
    return epanechnikov_matrix([t], centres, bandwidth)[0]


def kernel_matrix(ts, L: int, bandwidth: float) -> torch.Tensor:
    """Weights (T, L) of the L layers around each time of ``ts``."""
    return epanechnikov_matrix(ts, layer_centres(L), bandwidth)


def kernel_smooth(X, ts, bandwidth: float) -> torch.Tensor:
    """Kernel average of a layer sequence X (S, L, …) around each time of ``ts``, (T, S, …)."""
    X = as_tensor(X)
    return torch.tensordot(kernel_matrix(ts, X.shape[1], bandwidth), X.transpose(0, 1), dims=([1], [0]))
