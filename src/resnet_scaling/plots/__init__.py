"""Seaborn figures, one function per figure, grouped by stage in submodules.

Shared helpers: :func:`save_figure` writes PDF and PNG atomically; :func:`slope_guide` draws
a line of a given log-log slope. Fitted slopes in legends come from the one log-log fit,
:func:`resnet_scaling.scaling.exponents.loglog_fit`.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from ..io import atomic_path  # noqa: E402

sns.set_theme(context="paper", style="whitegrid")


def slope_guide(ax, x, y, slope: float, **kw) -> None:
    """Draw a line of the given log-log slope through the geometric centre of the points (x, y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 2 or not np.isfinite(slope):
        return
    lx, ly = np.log(x[keep]), np.log(y[keep])
    xs = np.geomspace(x[keep].min(), x[keep].max(), 20)
    ax.plot(xs, np.exp(ly.mean() + slope * (np.log(xs) - lx.mean())), **kw)


def _tick_label(value: float, _pos=None) -> str:
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:g}"
    exponent = int(np.floor(np.log10(abs(value))))
    mantissa = value / 10.0**exponent
    return rf"$10^{{{exponent}}}$" if np.isclose(mantissa, 1) else rf"${mantissa:g}\times10^{{{exponent}}}$"


def log_ticks(ax, axis: str = "x", max_labels: int = 6) -> None:
    """Readable labels on a log axis: 1, 2 and 5 × 10^k inside its range (fewer per decade when
    they would exceed ``max_labels``; evenly spaced round values added when fewer than three
    fall inside a short range) and no minor labels, which run together on short ranges.
    Call it once the axis range is final."""
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    if not (lo > 0 and np.isfinite(hi)):
        return
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    for subs in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**e for e in decades for m in subs if lo <= m * 10.0**e <= hi]
        if len(ticks) <= max_labels:
            break
    else:
        ticks = ticks[:: int(np.ceil(len(ticks) / max_labels))]
    if len(ticks) < 3:  # a short range: add evenly spaced round values inside it
        steps = matplotlib.ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        ticks = sorted(set(ticks) | {float(f"{t:.3g}") for t in steps if lo <= t <= hi and t > 0})
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_label))
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())


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
