"""Figures of the training-side phase diagram (docs/maths.md §8)."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch

from . import save_figure
from .scaling import PALETTE

#: Regimes the phase diagram can show, in legend order (the scaling stage's colours).
REGIME_ORDER = ("ODE", "ODE (rough weights)", "SDE", "neither", "undetermined", "no usable networks")
COLORS = {**PALETTE, "no usable networks": "#ffffff"}


#: Font size (pt) of the cell text and labels of the phase diagram: readable when printed.
CELL_FONT = 9


def _interval(value: float, low: float, high: float) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]" if np.isfinite(low) and np.isfinite(high) else f"{value:.2f}"


def _ordered(values: pd.Series) -> list:
    return list(dict.fromkeys(values))


def phase_diagram_figure(regimes: pd.DataFrame, path: str | os.PathLike) -> None:
    """One panel per activation: rows initialisation × residual scale, columns optimiser; a cell's
    colour is its regime, its text the exponent of M and the increment-ratio slope with 95 % intervals."""
    activations = _ordered(regimes["activation"])
    rows = _ordered(zip(regimes["initialisation_label"], regimes["residual_scale_label"]))
    columns = _ordered(regimes["optimizer_label"])
    # cells sized for their three lines at CELL_FONT pt
    fig, axes = plt.subplots(1, len(activations), figsize=(2.4 + 2.7 * len(columns) * len(activations),
                                                           1.3 + 0.78 * len(rows)), squeeze=False)
    for ax, activation in zip(axes[0], activations):
        part = regimes[regimes["activation"] == activation]
        image = np.ones((len(rows), len(columns), 3))
        for _, r in part.iterrows():
            i = rows.index((r["initialisation_label"], r["residual_scale_label"]))
            j = columns.index(r["optimizer_label"])
            image[i, j] = to_rgb(COLORS.get(r["regime"], "#999999"))
            support = r.get("support", np.nan)
            text = (f"{r['regime']}" + (f" ({support:.0%})" if np.isfinite(support) else "")
                    + f"\nexp. M {_interval(r['exponent'], r['exponent_ci_low'], r['exponent_ci_high'])}"
                    + "\nincr. ratio "
                    + _interval(r["increment_ratio_slope"], r["increment_ratio_ci_low"], r["increment_ratio_ci_high"]))
            dark = r["regime"] not in ("no usable networks", "undetermined")
            ax.text(j, i, text, ha="center", va="center", fontsize=CELL_FONT, color="white" if dark else "black")
        ax.imshow(image, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(columns)), columns, fontsize=CELL_FONT)
        ax.set_yticks(range(len(rows)), [f"{a} init, {b}" for a, b in rows], fontsize=CELL_FONT)
        ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
        ax.grid(False)
        ax.grid(which="minor", color="white", linewidth=2)
        ax.tick_params(which="minor", length=0)
        ax.set_title(activation)
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    shown = [r for r in REGIME_ORDER if r in set(regimes["regime"])]
    handles = [Patch(facecolor=COLORS[r], edgecolor="0.4", label=r) for r in shown]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=CELL_FONT,
               bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("Regime of the trained weights by training choice (exponent of M and increment-ratio "
                 "slope, 95 % seed-bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def anchor_figure(table: pd.DataFrame, slopes: pd.DataFrame, path: str | os.PathLike) -> None:
    """max_k ‖Z_{k+1} − Z_k‖ of the anchor's weights Z = (V, W) against L (trained, initial, and
    the update trained − initial) per initialisation profile, fitted slopes with intervals in the legend."""
    part = table[(table["weights"] == "Z") & (table["statistic"] == "max_increment")]
    fig, ax = plt.subplots(figsize=(8.4, 3.6))
    colors = dict(zip(_ordered(part["experiment"]), sns.color_palette("deep")))
    for (experiment, stage), group in part.groupby(["experiment", "stage"], sort=False):
        fit = slopes[(slopes["experiment"] == experiment) & (slopes["stage"] == stage)
                     & (slopes["weights"] == "Z") & (slopes["statistic"] == "max_increment")]
        label = f"{experiment.split('-', 1)[-1]} init, {stage}"
        if len(fit):
            f = fit.iloc[0]
            label += f": slope {f['slope']:+.2f} [{f['slope_ci_low']:+.2f}, {f['slope_ci_high']:+.2f}]"
        means = group.groupby("depth")["value"].median()
        marker, line = {"trained": ("o", "-"), "initial": ("x", ":"), "update": ("s", "-.")}.get(stage, ("^", "--"))
        style = dict(color=colors[experiment], marker=marker, linestyle=line, ms=4)
        ax.plot(means.index, means.to_numpy(), label=label, **style)
        ax.scatter(group["depth"], group["value"], s=6, color=colors[experiment], alpha=0.35)
    depths = np.sort(part["depth"].unique())
    if len(depths):
        first = part[(part["stage"] == "trained") & (part["experiment"] == part["experiment"].iloc[0])]
        ref = first.groupby("depth")["value"].median()
        anchor_value = float(ref.iloc[0]) if len(ref) else 1.0
        # drawn 3 × above the first trained point, so that the data do not hide it
        ax.plot(depths, 3.0 * anchor_value * (depths / depths[0]) ** -1.0, color="k", linestyle="--", lw=1.2,
                label="reference slope −1 (Marion et al. 2024)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel(r"$\max_k \|Z_{k+1} - Z_k\|$,  Z = (V, W)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # off the data
    ax.set_title("Anchor: h + V tanh(W h + b)/L, SGD with lr ∝ L", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
