"""Seaborn figures, one function per figure, grouped by stage in submodules.

Shared helpers: :func:`save_figure` writes PDF and PNG atomically; :func:`slope_guide` draws
a line of a given log-log slope. Fitted slopes in legends come from the one log-log fit,
:func:`resnet_scaling.scaling.exponents.loglog_fit`.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

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
