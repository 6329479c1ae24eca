"""Deliverable 1 with d = 1, φ = identity, σ_b = μ_b = 0: geometric Brownian motion,
``log Y_1 → N(log y_0 + μ_w − σ_w²/2, σ_w²)``; at finite L the exact moments are
L·E log|1 + W| and L·Var log|1 + W| (docs/maths.md §6)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import integrate, stats
from tqdm.auto import tqdm

from ..config import section_settings
from .sampling import randn32
from .sampling import seeded_generator


def gbm_limit_moments(depth: float, mu_w: float, sigma_w: float, corrected: bool = True):
    """Mean and variance of log|Y_1| − log y_0: the GBM limit, plus the 1/L terms of docs/maths.md §6."""
    mean = mu_w - sigma_w**2 / 2
    var = sigma_w**2
    if corrected:
        mean += (mu_w * sigma_w**2 - mu_w**2 / 2 - 0.75 * sigma_w**4) / depth
        var += (2.5 * sigma_w**4 - 2 * mu_w * sigma_w**2) / depth
    return mean, var


def gbm_exact_moments(depth: int, mu_w: float, sigma_w: float) -> tuple[float, float]:
    """Exact mean and variance of log|Y_1| − log y_0 = Σ_k log|1 + W_k|, W_k ~ N(μ_w/L, σ_w²/L).

    By quadrature of the one-layer moments (the log singularity at W = −1 is integrable).
    """
    m, s = 1.0 + mu_w / depth, sigma_w / math.sqrt(depth)
    lo, hi = m - 14 * s, m + 14 * s
    pts = [0.0] if lo < 0 < hi else None

    def moment(p):
        f = lambda u: np.log(abs(u)) ** p * stats.norm.pdf(u, m, s)
        val, _ = integrate.quad(f, lo, hi, points=pts, limit=400, epsabs=1e-14, epsrel=1e-12)
        return val

    e1, e2 = moment(1), moment(2)
    return depth * e1, depth * (e2 - e1**2)


#: Paths simulated at once (bounds the memory of the Monte-Carlo loop).
GBM_CHUNK = 20000


def gbm_tables(cfg: dict, seed: int = 0, progress: bool = False):
    """Deliverable 1, d = 1: Monte-Carlo moments of log|Y_1| against the exact and limit laws.

    Returns ``(moments, density)``. ``moments``: per (depth, statistic ∈ {mean, variance})
    the estimate with its standard error and 95 % interval, the exact finite-L value,
    the corrected limit formula, the limit, the z-score against the exact value, and the
    fraction of negative outputs with its prediction L Φ(−√L/σ_w). ``density``: a histogram
    of log|Y_1| at the largest depth with the limit normal density at the bin centres.
    """
    cfg = section_settings("init_limits.gbm", cfg)
    mu, sig, y0 = cfg["mu_w"], cfg["sigma_w"], cfg["y0"]
    n, chunk = int(cfg["paths"]), GBM_CHUNK
    rows, dens = [], []
    depths = sorted(cfg["depths"])
    for L in tqdm(depths, disable=not progress, desc="gbm"):
        gen = seeded_generator(seed, "gbm", L)
        logs, neg = [], 0
        for start in range(0, n, chunk):
            P = min(chunk, n - start)
            factor = 1.0 + mu / L + sig / math.sqrt(L) * randn32(gen, (P, L))
            logs.append(torch.log(factor.abs()).sum(dim=1) + math.log(abs(y0)))
            neg += int(((factor < 0).sum(dim=1) % 2 == 1).sum())
        x = torch.cat(logs).numpy()
        exact_mean, exact_var = gbm_exact_moments(L, mu, sig)
        corr_mean, corr_var = gbm_limit_moments(L, mu, sig, corrected=True)
        lim_mean, lim_var = gbm_limit_moments(L, mu, sig, corrected=False)
        centred = x - x.mean()
        var = centred.var(ddof=1)
        se = {"mean": math.sqrt(var / n),
              "variance": math.sqrt(max((centred**4).mean() - var**2, 0.0) / n)}
        est = {"mean": x.mean(), "variance": var}
        exact = {"mean": exact_mean + math.log(abs(y0)), "variance": exact_var}
        corrected = {"mean": corr_mean + math.log(abs(y0)), "variance": corr_var}
        limit = {"mean": lim_mean + math.log(abs(y0)), "variance": lim_var}
        for stat_name in ("mean", "variance"):
            rows.append(dict(
                depth=L, statistic=stat_name, paths=n, estimate=float(est[stat_name]),
                stderr=se[stat_name],
                ci_low=float(est[stat_name] - 1.96 * se[stat_name]),
                ci_high=float(est[stat_name] + 1.96 * se[stat_name]),
                exact=exact[stat_name], corrected_limit=corrected[stat_name],
                limit=limit[stat_name],
                z_exact=float((est[stat_name] - exact[stat_name]) / se[stat_name]),
                z_corrected=float((est[stat_name] - corrected[stat_name]) / se[stat_name]),
                negative_fraction=neg / n,
                negative_predicted=L * stats.norm.cdf(-math.sqrt(L) / sig),
            ))
        if L == depths[-1]:
            counts, edges = np.histogram(x, bins=60)
            centres = 0.5 * (edges[1:] + edges[:-1])
            width = edges[1] - edges[0]
            for c, cnt in zip(centres, counts):
                dens.append(dict(
                    depth=L, x=float(c), density=cnt / (n * width),
                    density_ci_low=stats.beta.ppf(0.025, cnt, n - cnt + 1) / width if cnt else 0.0,
                    density_ci_high=stats.beta.ppf(0.975, cnt + 1, n - cnt) / width,
                    limit_density=float(stats.norm.pdf(c, limit["mean"], math.sqrt(limit["variance"]))),
                ))
    return pd.DataFrame(rows), pd.DataFrame(dens)
