"""Deliverable 5: weights along depth given by fractional Gaussian noise of Hurst index H; the
critical scaling is β_c ≈ max(H, 1/2) (docs/maths.md §6)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import section_settings
from ..io import stable_seed
from .fgn import fgn
from .relative_change import EXPLOSION_THRESHOLD, WeightFn, is_exploded, marion_network
from .sampling import randn32
from .sampling import seeded_generator


def fgn_weights(n_paths: int, dim: int, depth: int, hurst: float, gen: torch.Generator) -> WeightFn:
    """V_k, W_k whose every entry is an fGn sequence in k (Hurst H), variance 1/d; all drawn at once."""
    w = fgn(2 * n_paths * dim * dim, depth, hurst, gen) / math.sqrt(dim)
    w = w.T.reshape(depth, 2, n_paths, dim, dim)
    return lambda k: (w[k, 0], w[k, 1])


def phase_diagram_table(cfg: dict, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Deliverable 5: relative change over β × H with fGn weights, per path (tidy).

    One row per (H, depth, β, path): the relative change ‖h_L − h_0‖/‖h_0‖ and whether it
    exploded (not finite or above ``explosion_threshold``); exploded values are kept as
    they are (inf where they overflowed), never clipped.
    """
    cfg = section_settings("init_limits.phase_diagram", cfg)
    d, n = int(cfg["dim"]), int(cfg["paths"])
    betas = [float(b) for b in cfg["betas"]]
    depths = sorted(int(L) for L in cfg["depths"])
    threshold = float(cfg["explosion_threshold"])
    frames = []
    jobs = [(H, L) for H in cfg["hursts"] for L in depths]
    for H, L in tqdm(jobs, disable=not progress, desc="phase diagram"):
        gen = seeded_generator(seed, "phase", H, L)
        h0 = randn32(gen, (n, d))
        rel, _ = marion_network(fgn_weights(n, d, L, float(H), gen), L, betas, h0)
        v = rel.numpy()
        frames.append(pd.DataFrame(dict(
            hurst=float(H), depth=L,
            beta=np.repeat(betas, n), path=np.tile(np.arange(n), len(betas)),
            relative_change=v.ravel(), exploded=is_exploded(v.ravel(), threshold),
        )))
    return pd.concat(frames, ignore_index=True)


def _slopes_of_medians(log_medians: np.ndarray, log_depths: np.ndarray) -> np.ndarray:
    """OLS slopes in log L of log medians (..., n_depths); +inf where a median exploded."""
    x = log_depths - log_depths.mean()
    finite = np.isfinite(log_medians).all(axis=-1)
    y = np.where(np.isfinite(log_medians), log_medians, 0.0)
    slope = (y * x).sum(axis=-1) / (x**2).sum()
    return np.where(finite, slope, np.inf)


def _zero_crossing(betas: np.ndarray, slopes: np.ndarray) -> float:
    """The first β at which the slope turns from positive to non-positive (linear interpolation)."""
    for i in range(len(betas) - 1):
        if slopes[i] > 0 >= slopes[i + 1]:
            if not np.isfinite(slopes[i]):
                return float(betas[i + 1])
            return float(betas[i] + (betas[i + 1] - betas[i]) * slopes[i] / (slopes[i] - slopes[i + 1]))
    return math.nan


def critical_line(paths: pd.DataFrame, n_boot: int = 200, seed: int = 0):
    """The estimated critical scaling β_c(H) and the per-cell summary of the phase diagram.

    β_c(H) is where the growth exponent of the median relative change in L (OLS slope of
    log median on log L over the depths) crosses 0: above β_c the change vanishes
    (slope ≈ max(H, ½) − β), below it explodes (an exploded median counts as +∞, so a
    cell whose median exploded has slope +∞). The 95 % interval resamples paths.
    Returns ``(cells, line)``: per (H, β, depth) the median, explosion count and slope;
    per H the estimate, its interval and the prediction max(H, ½).
    """
    hursts = np.sort(paths.hurst.unique())
    betas = np.sort(paths.beta.unique())
    depths = np.sort(paths.depth.unique())
    n_paths = int(paths.path.max()) + 1
    table = paths.sort_values(["hurst", "depth", "beta", "path"])
    v = np.where(table.exploded, np.inf, table.relative_change).reshape(
        len(hursts), len(depths), len(betas), n_paths)
    exploded = table.exploded.to_numpy().reshape(v.shape)
    log_depths = np.log(depths.astype(float))
    with np.errstate(divide="ignore"):
        log_med = np.log(np.median(v, axis=-1))  # (H, L, β)
    slopes = _slopes_of_medians(np.moveaxis(log_med, 1, -1), log_depths)  # (H, β)
    rng = np.random.default_rng(stable_seed(seed, "critical-boot"))
    cells, line = [], []
    for hi, H in enumerate(hursts):
        for li, L in enumerate(depths):
            for bi, beta in enumerate(betas):
                cells.append(dict(
                    hurst=float(H), beta=float(beta), depth=int(L), paths=n_paths,
                    median=float(np.exp(log_med[hi, li, bi])),
                    exploded=int(exploded[hi, li, bi].sum()),
                    slope=float(slopes[hi, bi]),
                ))
        boot = np.empty(n_boot)
        for r in range(n_boot):
            pick = rng.integers(0, n_paths, size=n_paths)
            with np.errstate(divide="ignore"):
                lm = np.log(np.median(v[hi][..., pick], axis=-1))  # (L, β)
            boot[r] = _zero_crossing(betas, _slopes_of_medians(lm.T, log_depths))
        ok = np.isfinite(boot)
        line.append(dict(
            hurst=float(H), beta_critical=_zero_crossing(betas, slopes[hi]),
            ci_low=float(np.quantile(boot[ok], 0.025)) if ok.any() else np.nan,
            ci_high=float(np.quantile(boot[ok], 0.975)) if ok.any() else np.nan,
            theory=max(float(H), 0.5), depths=",".join(str(int(L)) for L in depths),
            bootstrap_failures=int((~ok).sum()),
        ))
    return pd.DataFrame(cells), pd.DataFrame(line)


def phase_diagram(cfg: dict, seed: int = 0, progress: bool = False):
    """Deliverable 5 in one call: per-path table, per-cell summary and critical line."""
    cfg = section_settings("init_limits.phase_diagram", cfg)
    paths = phase_diagram_table(cfg, seed, progress)
    cells, line = critical_line(paths, int(cfg["bootstrap"]), seed)
    return paths, cells, line
