"""Kernel estimates of the drift and local covariance of trained weight paths, the weight-path
law they define, and whether the estimates of different depths agree (docs/maths.md §4)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..sde.coefficients import Tabulated
from ..sde.laws import WeightPathLaw
from ..sde.smoothing import epanechnikov_weights, kernel_matrix, layer_centres
from ..sde.tensors import DTYPE, as_tensor


@dataclass
class CoefficientEstimate:
    """Kernel estimates of the drift and local covariance of trained weight paths (docs/maths.md §4).

    On the grid ``ts`` (T,), for each of S networks of depth L:
    ``A_bar`` (S, T, d, d), ``b_bar`` (S, T, d): smoothed ``L M_k``, ``L m_k`` (the drift of W);
    ``delta_bar`` (S, T): smoothed ``L δ_k``; ``A_mean``, ``b_mean``: smoothed A_k, b_k;
    ``cov_trace`` (S, T): trace of the local covariance, smoothed ``L |ΔW_k − Ā/L|²``;
    ``row_cov`` (S, T, d, d+1, d+1) or None: the blocks C_i of the Itô term (§4(c)).
    ``residuals`` (S, L, d, d+1): ``√L (ΔW_k − Ā(t_k)/L)`` rows (ΔW^A | ΔW^b), for sampling
    (None in an estimate kept only for its drift and covariance trace).
    """

    ts: torch.Tensor
    L: int
    bandwidth: float
    A_bar: torch.Tensor
    b_bar: torch.Tensor
    delta_bar: torch.Tensor
    A_mean: torch.Tensor
    b_mean: torch.Tensor
    cov_trace: torch.Tensor
    residuals: torch.Tensor | None
    row_cov: torch.Tensor | None = None


#: Layers taken at a time by :func:`estimate_coefficients` (at L = 9100, 8 networks of width 25,
#: about 40 MB per temporary instead of one of the size of A for every intermediate).
LAYER_CHUNK = 1024


def interpolation_weights(ts, times) -> torch.Tensor:
    """Weights (K, T) of linear interpolation on the grid ``ts`` (T,) at ``times`` (K,), clamped
    to the grid: ``W @ values`` equals :class:`~resnet_scaling.sde.coefficients.Tabulated` at each time."""
    grid, times = as_tensor(ts).numpy(), as_tensor(times).numpy()
    j = np.clip(np.searchsorted(grid, times, side="right") - 1, 0, len(grid) - 2)
    w = np.clip((times - grid[j]) / (grid[j + 1] - grid[j]), 0.0, 1.0)
    W = np.zeros((len(times), len(grid)))
    W[np.arange(len(times)), j] = 1 - w
    W[np.arange(len(times)), j + 1] += w
    return torch.as_tensor(W, dtype=DTYPE)


def estimate_coefficients(A, b, delta, bandwidth: float, n_grid: int = 40, *, with_row_cov: bool = True) -> CoefficientEstimate:
    """Kernel-smoothed drift ``Ā(t)``, ``b̄(t)`` and local covariance of the weight paths of
    S trained networks: ``A`` (S, L, d, d), ``b`` (S, L, d), ``delta`` (S, L). Beside the
    inputs only the residuals (one array of the size of A) are held, the rest a chunk of
    :data:`LAYER_CHUNK` layers at a time."""
    A, b, delta = as_tensor(A), as_tensor(b), as_tensor(delta)
    S, L, d = A.shape[:3]
    ts = torch.linspace(0.0, 1.0, n_grid + 1, dtype=DTYPE)
    K = kernel_matrix(ts, L, bandwidth)  # (T, L)
    chunks = [(k, min(k + LAYER_CHUNK, L)) for k in range(0, L, LAYER_CHUNK)]

    def M(k0: int, k1: int) -> torch.Tensor:  # effective weights δ_k A_k of the layers k0..k1-1
        return delta[:, k0:k1, None, None] * A[:, k0:k1]

    m = delta[..., None] * b
    A_bar = L * sum(torch.einsum("tk,skij->stij", K[:, k0:k1], M(k0, k1)) for k0, k1 in chunks)
    A_mean = sum(torch.einsum("tk,skij->stij", K[:, k0:k1], A[:, k0:k1]) for k0, k1 in chunks)
    b_bar = torch.einsum("tk,ski->sti", K, L * m)
    # drift at the layer centres (linear interpolation of the grid), then centred increments
    W = interpolation_weights(ts, layer_centres(L))  # (L, T)
    R = torch.empty((S, L, d, d + 1), dtype=DTYPE)  # rows (ΔW^A | ΔW^b)
    for k0, k1 in chunks:
        R[:, k0:k1, :, :d] = M(k0, k1) - torch.einsum("kt,stij->skij", W[k0:k1], A_bar) / L
    R[..., d] = m - torch.einsum("kt,sti->ski", W, b_bar) / L
    R.mul_(math.sqrt(L))
    row_cov = torch.einsum("tk,skia,skib->stiab", K, R, R) if with_row_cov else None
    return CoefficientEstimate(
        ts=ts,
        L=L,
        bandwidth=float(bandwidth),
        A_bar=A_bar,
        b_bar=b_bar,
        delta_bar=torch.einsum("tk,sk->st", K, L * delta),
        A_mean=A_mean,
        b_mean=torch.einsum("tk,ski->sti", K, b),
        cov_trace=torch.einsum("tk,sk->st", K, torch.linalg.vector_norm(R, dim=(-1, -2)).square()),
        residuals=R,
        row_cov=row_cov,
    )


class KernelWeightPathLaw(WeightPathLaw):
    """The law fitted to trained networks: drift ``Ā(t)``, ``b̄(t)`` and Gaussian increments
    with the kernel-smoothed local covariance, drawn as ``√dt Σ_k √K(t, k) R_k g_k`` from the
    centred residuals R_k (exact covariance, no factorisation of the (d² + d)² matrix).

    ``seeds``: one network index (its own drift, which still carries that network's
    realised noise, smoothed), or several: the drift is their mean and the residuals of all
    of them, centred on that mean, share the kernel weight (so the networks are treated as
    draws of one law, and differences between their drifts count as diffusion).
    """

    def __init__(self, est: CoefficientEstimate, seeds: int | Sequence[int]):
        seeds = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
        self.est, self.seeds = est, seeds
        L = self.L = est.L
        self.centres = layer_centres(L)
        A_bar, b_bar = est.A_bar[seeds], est.b_bar[seeds]  # (n, T, ...)
        self._A = Tabulated(est.ts, A_bar.mean(0))
        self._b = Tabulated(est.ts, b_bar.mean(0))
        R = est.residuals[seeds]  # (n, L, d, d+1), centred on each network's own drift
        if len(seeds) > 1:  # re-centre on the common drift: R + (Ā_s − Ā)(t_k)/√L
            own = torch.cat([A_bar, b_bar.unsqueeze(-1)], -1)  # (n, T, d, d+1)
            W = interpolation_weights(est.ts, self.centres)  # (L, T)
            shift = torch.einsum("kt,ntij->nkij", W, own - own.mean(0))  # (n, L, d, d+1)
            R = R + shift / math.sqrt(L)
        self.n = len(seeds)
        self.R = R.transpose(0, 1).reshape(L * self.n, *R.shape[2:])  # layer-major (L·n, d, d+1)

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.R.shape[1]

    def _window(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        w = epanechnikov_weights(t, self.centres, self.est.bandwidth)
        k = torch.nonzero(w > 0).flatten()
        idx = (k.unsqueeze(1) * self.n + torch.arange(self.n)).flatten()
        return idx, (w[k] / self.n).repeat_interleave(self.n)

    def increments(self, t0, t1, n_paths, gen):
        dt = t1 - t0
        k, w = self._window(t0)
        d = self.dim
        g = torch.randn(n_paths, len(k), generator=gen, dtype=DTYPE)
        noise = (g * w.sqrt()) @ self.R[k].reshape(len(k), -1) * math.sqrt(dt)
        noise = noise.view(n_paths, d, d + 1)
        return self._A(t0) * dt + noise[..., :d], self._b(t0) * dt + noise[..., d]

    def row_cov(self, t: float) -> torch.Tensor:
        k, w = self._window(t)
        Rk = self.R[k]
        return torch.einsum("k,kia,kib->iab", w, Rk, Rk)


def coefficient_agreement(fits: dict[int, CoefficientEstimate]) -> list[dict]:
    """Do the estimated coefficients of different depths agree (docs/maths.md §4, trained networks)?

    For each depth: ‖X_L − X_deepest‖ / ‖X_deepest‖ over the time grid, X the seed mean of
    the drift Ā (and b̄) or of the diffusion trace.
    """
    deepest = max(fits)
    ref = fits[deepest]
    rows = []
    for L, est in sorted(fits.items()):
        for name, get in (
            ("drift_A", lambda e: e.A_bar.mean(0)),
            ("drift_b", lambda e: e.b_bar.mean(0)),
            ("diffusion_trace", lambda e: e.cov_trace.mean(0)),
        ):
            a, r = get(est), get(ref)
            rows.append({"depth": L, "reference_depth": deepest, "quantity": name,
                         "relative_difference": float((a - r).norm() / r.norm().clamp_min(1e-300))})
    return rows
