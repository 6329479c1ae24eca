"""The optimal learning rate η*(L), its seed-bootstrap interval and the slope of log η* against
log L (docs/maths.md §9).

At one depth the losses of a cell form a (learning rates × seeds) table, NaN where a run
diverged. The curve is the mean over seeds of the log final loss; a learning rate at which any
seed diverged has no value on the curve (+inf here, a gap in the figures): a rate that sometimes
diverges is not optimal. η* is the vertex of the parabola through the best grid point and its two
neighbours in log2 lr (within half a grid step of the best point); at an edge of the grid, or next
to a diverged rate, it is the grid point itself, and an edge is flagged: the optimum lies outside
the grid there, so that depth is left out of the slope.

The interval resamples the seeds of each depth with replacement (the same draw at every learning
rate, since one seed is one initial network at all of them; the depths independently, since their
networks are distinct) and recomputes η*(L) and the slope per draw: percentile intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..scaling.exponents import loglog_fit

#: Depths with an interior η* that a slope of log η* needs (two points fit any line).
MIN_SLOPE_DEPTHS = 3


def curve(losses: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 1) of log loss; +inf where any seed diverged (a NaN or non-positive loss)."""
    losses = np.asarray(losses, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(losses) & (losses > 0), np.log(np.where(losses > 0, losses, 1.0)), np.inf)
    return logs.mean(axis=1)


def grid_optimum(losses: np.ndarray, lr_log2=None) -> int | None:
    """Index of the grid's best learning rate (lowest :func:`curve`); None if every rate diverged."""
    c = curve(losses)
    if not np.isfinite(c).any():
        return None
    return int(np.argmin(c))


def refine(c: np.ndarray, x: np.ndarray) -> tuple[float, bool]:
    """(log2 η*, at_edge) from a curve ``c`` on the grid ``x`` (increasing, evenly spaced)."""
    if not np.isfinite(c).any():
        return np.nan, False
    i = int(np.argmin(c))
    if i == 0 or i == len(c) - 1:
        return float(x[i]), True
    y0, y1, y2 = c[i - 1], c[i], c[i + 1]
    if not (np.isfinite(y0) and np.isfinite(y2)):
        return float(x[i]), False
    h = x[i + 1] - x[i]
    curvature = y0 - 2 * y1 + y2
    if curvature <= 0:
        return float(x[i]), False
    shift = 0.5 * h * (y0 - y2) / curvature
    return float(x[i] + np.clip(shift, -h / 2, h / 2)), False


def eta_star(losses: np.ndarray, x) -> tuple[float, bool]:
    """(log2 η*, at_edge) of one (learning rates × seeds) loss table."""
    return refine(curve(losses), np.asarray(x, dtype=float))


def _ols_slopes(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Slopes of ly (B, D) on lx (D,) row by row, ignoring NaN entries (NaN with fewer than 2 points)."""
    w = np.isfinite(ly).astype(float)
    n = w.sum(axis=1)
    y = np.where(w > 0, ly, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * lx).sum(axis=1) / n
        my = (w * y).sum(axis=1) / n
        sxx = (w * (lx - mx[:, None]) ** 2).sum(axis=1)
        sxy = (w * (lx - mx[:, None]) * (y - my[:, None])).sum(axis=1)
        return np.where((n >= 2) & (sxx > 0), sxy / sxx, np.nan)


def transfer_fit(tables: dict[int, np.ndarray], x, *, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """η*(L) with its interval per depth, and the slope of log η* on log L with its interval.

    ``tables``: depth -> (learning rates × seeds) final losses (NaN: diverged); ``x``: the grid's
    log2 learning rates. Returns the per-depth table (depth, lr_log2_star, eta_star, ci_low, ci_high
    (of η*), at_edge, n_seeds, n_diverged) and the slope record (slope, ci_low, ci_high, n_depths,
    n_at_edge, depths, note)."""
    x = np.asarray(x, dtype=float)
    depths = sorted(tables)
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    rows, boot = [], np.full((resamples, len(depths)), np.nan)
    for j, L in enumerate(depths):
        losses = np.asarray(tables[L], dtype=float)
        point, edge = eta_star(losses, x)
        S = losses.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(np.isfinite(losses) & (losses > 0), np.log(np.where(losses > 0, losses, 1.0)), np.inf)
        draws = rng.integers(0, S, size=(resamples, S))
        curves = logs[:, draws].mean(axis=2)  # (K, B)
        for b in range(resamples):
            boot[b, j] = refine(curves[:, b], x)[0]
        lo, hi = (np.nanquantile(boot[:, j], [alpha, 1 - alpha]) if np.isfinite(boot[:, j]).any()
                  else (np.nan, np.nan))
        rows.append({"depth": L, "lr_log2_star": point, "eta_star": 2.0**point, "ci_low": 2.0**lo,
                     "ci_high": 2.0**hi, "at_edge": bool(edge), "n_seeds": S,
                     "n_diverged": int((~np.isfinite(losses)).sum()),
                     "diverged_lr_log2": " ".join(f"{k:g}" for k, row in zip(x, losses) if not np.isfinite(row).all())})
    table = pd.DataFrame(rows)
    usable = (~table["at_edge"].to_numpy()) & np.isfinite(table["lr_log2_star"].to_numpy())
    lx = np.log(np.asarray(depths, dtype=float))
    note = ""
    if table["at_edge"].any():
        note = ("η* at an edge of the grid (outside it) at L = "
                + ", ".join(str(d) for d, e in zip(depths, table["at_edge"]) if e) + ": left out of the slope")
    if usable.sum() >= MIN_SLOPE_DEPTHS:
        fit = loglog_fit(np.asarray(depths, float)[usable], table["eta_star"].to_numpy()[usable], level)
        slopes = _ols_slopes(lx[usable], boot[:, usable] * np.log(2.0))
        finite = slopes[np.isfinite(slopes)]
        lo, hi = (np.quantile(finite, [alpha, 1 - alpha]) if len(finite) else (np.nan, np.nan))
        record = {"slope": fit.slope, "ci_low": float(lo), "ci_high": float(hi), "ols_ci_low": fit.ci_low,
                  "ols_ci_high": fit.ci_high}
    else:
        record = {"slope": np.nan, "ci_low": np.nan, "ci_high": np.nan, "ols_ci_low": np.nan, "ols_ci_high": np.nan}
        note = (note + "; " if note else "") + f"{int(usable.sum())} depths with an interior η*: no slope"
    record.update(n_depths=int(usable.sum()), n_at_edge=int(table["at_edge"].sum()),
                  depths=" ".join(str(int(d)) for d, u in zip(depths, usable) if u), note=note)
    return table, record


def transfer_verdict(slope: float, lo: float, hi: float, tol: float) -> str:
    """'transfers' when the slope's interval lies within ±tol, 'does not transfer' when it excludes
    0 and the slope lies beyond ±tol, 'undetermined' otherwise (or without a slope)."""
    if not np.all(np.isfinite([slope, lo, hi])):
        return "undetermined"
    if -tol <= lo and hi <= tol:
        return "transfers"
    if (lo > 0 or hi < 0) and abs(slope) > tol:
        return "does not transfer"
    return "undetermined"
