"""Seaborn figures, one function per figure, grouped by stage in submodules.

Shared helpers: :func:`save_figure` writes PDF and PNG atomically; :func:`loglog_fit`
gives the slope, its standard error and a 95 % interval for legends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from ..io import atomic_path  # noqa: E402
from ..scaling.exponents import ols_fit  # noqa: E402

sns.set_theme(context="paper", style="whitegrid")


@dataclass(frozen=True)
class LogLogFit:
    """OLS fit of log y on log x: slope, intercept, standard error and 95 % interval."""

    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int

    def label(self, name: str = "slope") -> str:
        return f"{name} {self.slope:+.2f} [{self.ci_low:+.2f}, {self.ci_high:+.2f}]"

    def line(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.intercept) * np.asarray(x, dtype=float) ** self.slope


def loglog_fit(x, y) -> LogLogFit:
    """Fit log y = a + s log x by OLS over the finite positive points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    n = len(lx)
    slope, intercept, stderr = ols_fit(lx, ly)
    half = stats.t.ppf(0.975, n - 2) * stderr if n > 2 else np.nan
    return LogLogFit(slope, intercept, stderr, slope - half, slope + half, n)


def slope_guide(ax, x, y, slope: float, **kw) -> None:
    """Draw a line of the given log-log slope through the geometric centre of the points (x, y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 2 or not np.isfinite(slope):
        return
    lx, ly = np.log(x[keep]), np.log(y[keep])
    xs = np.geomspace(x[keep].min(), x[keep].max(), 20)
    ax.plot(xs, np.exp(ly.mean() + slope * (np.log(xs) - lx.mean())), **kw)


def png_outputs(outputs) -> dict:
    """A rule's figures by name, from its outputs (a mapping or Snakemake's named list): each
    output ``<figure>_png`` as ``<figure>``; the figure functions write the PDF beside it."""
    return {name.removesuffix("_png"): path for name, path in outputs.items() if name.endswith("_png")}


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save ``fig`` as PDF and PNG beside each other (``path`` may end in either), atomically."""
    path = Path(path)
    for suffix in (".pdf", ".png"):
        target = path.with_suffix(suffix)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)
