"""The Epanechnikov smoother of layer sequences in t (docs/maths.md §4, trained networks).

Layer k of L sits at t = (k + ½)/L. Around a time t the weights are ``K((c − t)/bw)`` with
``K(u) = ¾(1 − u²)₊``, normalised to sum 1: near 0 and 1 the window is cut and the weights
renormalise over what is left. One rule for an empty window (no centre within ``bw`` of t,
possible only when bw < 1/(2L)): the nearest centre gets all the weight (the first of two at
equal distance). A caller that wants every window to hold layers widens the bandwidth itself.
"""

from __future__ import annotations

import torch

from ..running_sums import cumulative_sum

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
    """Kernel average of a layer sequence X (S, L, …) around each time of ``ts``, (T, S, …).

    The same weights as :func:`kernel_matrix`, without forming the (T, L) matrix: the
    Epanechnikov weight ``1 − ((k − a)/r)²`` of layer k around a time at index position
    ``a = tL − ½`` (half-width ``r = bandwidth·L`` layers) is a quadratic in k, so each window's
    weighted sum is ``S₀ − (S₂ − 2e S₁ + e² S₀)/r²`` from running sums S_j of ``v^j X`` over the
    window. O(L) work and memory per coordinate instead of O(T L): at L = 9100 the matrix alone
    is 1.3 GB. The running sums are taken over chunks of nearby times with ``v = k − o``
    measured from the chunk's own origin o, so no sum mixes magnitudes far apart; windows
    narrower than :data:`DIRECT_HALF_WIDTH` layers are summed layer by layer. Agrees with the
    matrix product to 1e-11 in float64 (tests/test_smoothing.py).
    """
    X = as_tensor(X)
    S, L = X.shape[:2]
    rest = X.shape[2:]
    flat = X.transpose(0, 1).reshape(L, -1)  # (L, F)
    ts = as_tensor(ts).reshape(-1)
    r = float(bandwidth) * L
    a = ts * L - 0.5
    lo = torch.ceil(a - r).clamp(0, L).long()  # boundary layers (|k − a| = r) carry weight 0
    hi = (torch.floor(a + r) + 1).clamp(0, L).long()
    n = (hi - lo).to(DTYPE)
    g = lo.to(DTYPE) - a  # offset of the window's first layer from its centre
    # Σ_{j<n} (1 − ((j + g)/r)²): the normalisation, in closed form
    z = n - (n * (n - 1) * (2 * n - 1) / 6 + g * n * (n - 1) + n * g * g) / (r * r)
    empty = (n <= 0) | (z <= 1e-12 * n.clamp_min(1.0))
    out = torch.empty(len(ts), flat.shape[1], dtype=DTYPE)
    if bool(empty.any()):  # the nearest centre (the first of two at equal distance)
        rows = torch.nonzero(empty).flatten()
        out[rows] = flat[torch.ceil(a[rows] - 0.5).clamp(0, L - 1).long()]
    rows = torch.nonzero(~empty).flatten()
    if r < DIRECT_HALF_WIDTH:
        out[rows] = _direct_windows(flat, a[rows], lo[rows], hi[rows], r) / z[rows].unsqueeze(1)
    else:
        out[rows] = _running_sum_windows(flat, a[rows], lo[rows], hi[rows], r) / z[rows].unsqueeze(1)
    return out.reshape(len(ts), S, *rest)


#: Below this half-width (in layers) a window holds at most 2·4 + 1 layers: they are summed one
#: by one, where running sums would divide by a small r² (see :func:`kernel_smooth`).
DIRECT_HALF_WIDTH = 4.0


def _direct_windows(flat, a, lo, hi, r: float) -> torch.Tensor:
    """Unnormalised kernel sums of short windows, layer by layer: (rows, F)."""
    total = torch.zeros(len(a), flat.shape[1], dtype=DTYPE)
    for j in range(int((hi - lo).max()) if len(a) else 0):
        k = lo + j
        inside = k < hi
        u = (k.to(DTYPE) - a) / r
        w = torch.where(inside, 1 - u * u, torch.zeros_like(u))
        total += w.unsqueeze(1) * flat[k.clamp(max=flat.shape[0] - 1)]
    return total


def _running_sum_windows(flat, a, lo, hi, r: float) -> torch.Tensor:
    """Unnormalised kernel sums from running sums of ``v^j X``, j = 0, 1, 2, over chunks of
    nearby times, each with its own origin: (rows, F)."""
    total = torch.empty(len(a), flat.shape[1], dtype=DTYPE)
    order = torch.argsort(a, stable=True)
    sorted_a = a[order].contiguous()
    reach = max(2.0 * r, 16.0)  # a chunk: the times within this many layers of its first
    start = 0
    while start < len(order):
        stop = int(torch.searchsorted(sorted_a, float(sorted_a[start]) + reach, right=True))
        rows = order[start:stop]
        k0, k1 = int(lo[rows].min()), int(hi[rows].max())
        origin = (k0 + k1) // 2
        v = torch.arange(k0, k1, dtype=DTYPE).sub_(origin).unsqueeze(1)
        block = flat[k0:k1]
        i0, i1 = lo[rows] - k0, hi[rows] - k0
        e = (a[rows] - origin).unsqueeze(1)
        s0 = _window_sums(block, i0, i1)
        weighted = block * v
        s1 = _window_sums(weighted, i0, i1)
        s2 = _window_sums(weighted.mul_(v), i0, i1)
        # Σ (1 − ((k − a)/r)²) X_k = S₀ − (S₂ − 2e S₁ + e² S₀)/r²
        total[rows] = s0 - s2.addcmul_(e, s1, value=-2.0).addcmul_(e * e, s0).div_(r * r)
        start = stop
    return total


def _window_sums(values: torch.Tensor, i0: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
    """Sums of ``values[i0:i1]`` for each pair (i0, i1), from one running sum: (rows, F)."""
    running = torch.empty(values.shape[0] + 1, values.shape[1], dtype=values.dtype)
    running[0] = 0.0
    cumulative_sum(values.contiguous().numpy(), 0, running[1:].numpy())
    return running[i1].sub_(running[i0])
