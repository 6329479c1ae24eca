"""Figures of the convolutional (CIFAR-10) experiment: statistics of the conv1 (A) and conv2 (δ)
kernels by operator norm against depth, with the fitted exponents of ``results/cifar/exponents.csv``."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter
import seaborn as sns

from . import save_figure
from .scaling import STAT_LABELS, _draw_fit, _fit_row, _grid, _included, _log_axes, _points

KERNELS = {"A": "A = conv1", "delta": "δ = conv2"}
#: The statistics of each figure: the max norm (the shipped figures' exponents), and the
#: hypothesis tests (root sum of squares and max increment, whose shipped slopes are 0.0).
FIGURES = {"max_norm": ("max_norm",), "hypothesis": ("root_sum_squares", "max_increment")}


def scaling_figure(statistics: pd.DataFrame, exponents: pd.DataFrame, path: str | os.PathLike,
                   statistics_shown=("max_norm",), include_status=("max_epochs",)) -> None:
    """One panel per (statistic, kernel): every seed as a point (excluded networks as ×), the
    fitted line with its exponent (max norm) or slope and 95 % interval, one colour per experiment."""
    panels = [(s, q) for s in statistics_shown for q in KERNELS]
    fig, axes = _grid(len(panels), ncols=2)
    colors = sns.color_palette("deep")
    for ax, (statistic, q) in zip(axes, panels):
        handles = []
        for color, exp in zip(colors, dict.fromkeys(statistics["experiment"])):
            data = statistics[(statistics["experiment"] == exp) & (statistics["quantity"] == q)
                              & (statistics["statistic"] == statistic)]
            if data.empty:
                continue
            _points(ax, data, color, _included(data, include_status))
            symbol = "α" if q == "delta" else "β"
            label = _draw_fit(ax, _fit_row(exponents, exp, q, statistic), color, exp, symbol,
                              slope=statistic != "max_norm")
            handles.append(plt.Line2D([], [], color=color, marker="o", ms=3, label=label))
        ax.set(xlabel="depth L", ylabel=f"{STAT_LABELS[statistic]} (operator norm)")
        ax.set_title(f"{KERNELS[q]}: {STAT_LABELS[statistic]}", fontsize=9)
        _log_axes(ax)
        _label_depths(ax, sorted(statistics["depth"].unique()))
        ax.legend(handles=handles, fontsize=6, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def _label_depths(ax, depths) -> None:
    """The depths of the grid as x labels; plain numbers on a y range shorter than a decade."""
    ax.xaxis.set_major_locator(FixedLocator(depths))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = ax.yaxis.get_view_interval()
    if lo > 0 and hi / lo < 10:
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
