"""Distances between samples of laws: Wasserstein-1 through quantile functions, and the
Kolmogorov–Smirnov test (docs/maths.md §4(d), §6)."""

from __future__ import annotations

import numpy as np
import torch

from .sde.tensors import DTYPE, as_tensor


def _columns(a) -> torch.Tensor:
    a = as_tensor(a)
    return a.reshape(a.shape[0], -1)


def _quantile_grid(n: int, m: int, levels: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slices of [0, 1] on which both empirical quantile functions are constant (all
    breakpoints i/n and j/m; or, when ``levels`` is below the larger sample size, that many
    equal slices, a midpoint rule) as their widths and the ranks of each sample's order
    statistics there."""
    if levels is None or levels >= max(n, m):
        u = torch.unique(torch.cat([torch.arange(n + 1, dtype=DTYPE) / n, torch.arange(m + 1, dtype=DTYPE) / m]))
        mid, width = (u[1:] + u[:-1]) / 2, u[1:] - u[:-1]
    else:
        mid = (torch.arange(levels, dtype=DTYPE) + 0.5) / levels
        width = torch.full((levels,), 1.0 / levels, dtype=DTYPE)
    # at level u the quantile is the ⌈u n⌉-th smallest value
    rank = lambda size: (mid * size).ceil().long().clamp(1, size) - 1
    return width, rank(n), rank(m)


def wasserstein1(a, b, *, levels: int | None = None) -> float:
    """W1 between the empirical laws of the columns of ``a`` (n, K) and ``b`` (m, K), averaged over K.

    W1 = ∫₀¹ |F_a⁻¹(u) − F_b⁻¹(u)| du: exact, or with ``levels`` below the larger sample
    size the midpoint rule on that many equal slices of [0, 1].
    """
    a, b = _columns(a), _columns(b)
    width, ra, rb = _quantile_grid(a.shape[0], b.shape[0], levels)
    sa, sb = torch.sort(a, dim=0).values, torch.sort(b, dim=0).values
    return float((width.unsqueeze(1) * (sa[ra] - sb[rb]).abs()).sum(0).mean())


def bootstrap_wasserstein1(a, b, n_boot: int = 0, seed: int = 0, levels: int = 2000) -> tuple[float, np.ndarray]:
    """:func:`wasserstein1` of paired samples a, b (P, K) and its bootstrap replicates (n_boot,).

    The rows are paired samples (a coupling, which lowers the variance); the bootstrap
    resamples pairs, which keeps it. A resample only repeats sorted values, so its quantiles
    come from cumulative counts without re-sorting; the levels are those of
    :func:`wasserstein1` with ``levels`` slices (all P order statistics when levels ≥ P).
    """
    a, b = _columns(a), _columns(b)
    P, K = a.shape
    M = min(levels, P)
    sa, oa = torch.sort(a, dim=0)
    sb, ob = torch.sort(b, dim=0)
    targets = ((torch.arange(M, dtype=DTYPE) + 0.5) / M * P).ceil().long().clamp(1, P)
    reps = np.empty(n_boot)
    if n_boot:
        gen = torch.Generator().manual_seed(seed)
        pos = targets.unsqueeze(0).expand(K, M).contiguous()
        for r in range(n_boot):
            counts = torch.bincount(torch.randint(0, P, (P,), generator=gen), minlength=P)
            ea = _quantile_of_resample(sa, counts[oa], pos)
            eb = _quantile_of_resample(sb, counts[ob], pos)
            reps[r] = float((ea - eb).abs().mean())
    return wasserstein1(a, b, levels=levels), reps


def _quantile_of_resample(sorted_vals: torch.Tensor, counts: torch.Tensor, targets: torch.Tensor):
    """The targets-th smallest values (K, M) of sorted values (P, K) repeated ``counts`` times."""
    cum = torch.cumsum(counts, dim=0).T.contiguous()  # (K, P)
    idx = torch.searchsorted(cum, targets).clamp_max(sorted_vals.shape[0] - 1)
    return torch.gather(sorted_vals.T, 1, idx)


def ks_min_pvalue(a, b) -> float:
    """Smallest two-sample Kolmogorov–Smirnov p-value over coordinates (Bonferroni: × d)."""
    from scipy import stats

    a, b = np.asarray(a), np.asarray(b)
    p = min(stats.ks_2samp(a[:, i], b[:, i]).pvalue for i in range(a.shape[1]))
    return float(min(1.0, p * a.shape[1]))
