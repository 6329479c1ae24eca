"""The figures of the transfer study (seaborn, PDF and PNG; no computation beyond averaging seeds):
the final loss against the base learning rate per depth, η*(L) with the slopes of log η*, and the
depth coordinate check. Slopes in legends come with their intervals; a diverged learning rate is a
gap in its curve, marked × on the panel's top edge, never a loss."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plots import log_ticks, plt, save_figure, sns
from .optimum import curve

BLOCK_LABELS = {"one-matrix": "h + δσ(Ah+b)", "two-matrix": "h + δVσ(Wh+b)"}


def _facets(table: pd.DataFrame) -> list[tuple[str, str]]:
    return list(table[["dataset", "block"]].drop_duplicates().itertuples(index=False, name=None))


def _slope_text(row) -> str:
    return f"slope {row['slope']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"


def loss_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell, depth and learning rate: the geometric mean over seeds of the final training loss,
    NaN (a gap) where a seed diverged, and whether one did."""
    rows = []
    for (cell, depth, k), part in runs.groupby(["cell", "depth", "lr_log2"], sort=True):
        c = curve(part["train_loss"].to_numpy()[None, :])[0]
        first = part.iloc[0]
        rows.append({"cell": cell, "parametrisation": first["parametrisation"], "block": first["block"],
                     "dataset": first["dataset"], "depth": int(depth), "lr_log2": k, "lr_base": 2.0**k,
                     "loss": float(np.exp(c)) if np.isfinite(c) else np.nan, "diverged": bool(part["diverged"].any())})
    return pd.DataFrame(rows)


def loss_lr_figure(runs: pd.DataFrame, transfer: pd.DataFrame, path, n_seeds: int) -> None:
    """Final training loss against the base learning rate, one curve per depth; one panel per
    (dataset, block) row and parametrisation column; the panel title quotes the slope of log η*."""
    curves = loss_curves(runs)
    facets = _facets(curves)
    params = list(dict.fromkeys(curves["parametrisation"]))
    depths = sorted(curves["depth"].unique())
    palette = dict(zip(depths, sns.color_palette("viridis", len(depths))))
    fig, axes = plt.subplots(len(facets), len(params), figsize=(4.2 * len(params), 3.2 * len(facets)),
                             squeeze=False, sharex=True)
    for i, (dataset, block) in enumerate(facets):
        for j, param in enumerate(params):
            ax = axes[i, j]
            part = curves[(curves["dataset"] == dataset) & (curves["block"] == block)
                          & (curves["parametrisation"] == param)]
            for depth in depths:
                d = part[part["depth"] == depth].sort_values("lr_log2")
                if d.empty:
                    continue
                ax.plot(d["lr_base"], d["loss"], marker="o", ms=2.5, lw=1.2, color=palette[depth], label=f"L = {depth}")
                bad = d[d["diverged"]]
                ax.plot(bad["lr_base"], np.full(len(bad), 0.97), ls="none", marker="x", ms=4, color=palette[depth],
                        transform=ax.get_xaxis_transform())
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            hit = transfer[(transfer["dataset"] == dataset) & (transfer["block"] == block)
                           & (transfer["parametrisation"] == param)]
            title = f"{param}, {block}, {dataset}"
            if len(hit):
                title += f"\nlog η* vs log L: {_slope_text(hit.iloc[0])}"
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("base learning rate" if i == len(facets) - 1 else "")
            ax.set_ylabel(f"final training loss\n(geom. mean, {n_seeds} seeds)" if j == 0 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title_fontsize=8,
               title="depth\n(× on a panel's top edge:\na seed diverged at that\nrate, no loss drawn)")
    save_figure(fig, path)


def eta_star_figure(optimum: pd.DataFrame, transfer: pd.DataFrame, path) -> None:
    """η*(L) with its seed-bootstrap interval per parametrisation; one panel per (dataset, block);
    the legend gives each slope of log η* on log L with its interval (hollow points: at the grid's
    edge, left out of the slope)."""
    facets = _facets(optimum)
    fig, axes = plt.subplots(1, len(facets), figsize=(4.8 * len(facets), 3.8), squeeze=False)
    params = list(dict.fromkeys(optimum["parametrisation"]))
    colours = dict(zip(params, sns.color_palette("colorblind", len(params))))
    for ax, (dataset, block) in zip(axes[0], facets):
        for param in params:
            part = optimum[(optimum["dataset"] == dataset) & (optimum["block"] == block)
                           & (optimum["parametrisation"] == param)].sort_values("depth")
            if part.empty:
                continue
            hit = transfer[(transfer["dataset"] == dataset) & (transfer["block"] == block)
                           & (transfer["parametrisation"] == param)]
            label = param + (f": {_slope_text(hit.iloc[0])}" if len(hit) else "")
            c = colours[param]
            err = np.vstack([part["eta_star"] - part["ci_low"], part["ci_high"] - part["eta_star"]]).clip(min=0)
            ax.errorbar(part["depth"], part["eta_star"], yerr=err, color=c, marker="o", ms=3.5, lw=1.2, capsize=2,
                        label=label)
            edge = part[part["at_edge"]]
            ax.plot(edge["depth"], edge["eta_star"], ls="none", marker="o", ms=7, mfc="white", mec=c)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("depth L")
        ax.set_ylabel("η* (base learning rate)")
        ax.set_title(f"{dataset}, {BLOCK_LABELS.get(block, block)}", fontsize=9)
        ax.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def coord_check_figure(coords: pd.DataFrame, slopes: pd.DataFrame, path) -> None:
    """RMS change of h_l after a few steps against L at l = L/4, L/2, L; rows (dataset, block),
    columns the layer; one line per parametrisation with its slope in L (flat: the rule scales the
    update right)."""
    facets = _facets(coords)
    fractions = sorted(coords["fraction"].unique())
    params = list(dict.fromkeys(coords["parametrisation"]))
    colours = dict(zip(params, sns.color_palette("colorblind", len(params))))
    fig, axes = plt.subplots(len(facets), len(fractions), figsize=(4.2 * len(fractions), 3.2 * len(facets)),
                             squeeze=False)
    names = {0.25: "l = L/4", 0.5: "l = L/2", 1.0: "l = L"}
    for i, (dataset, block) in enumerate(facets):
        for j, fraction in enumerate(fractions):
            ax = axes[i, j]
            for param in params:
                part = coords[(coords["dataset"] == dataset) & (coords["block"] == block)
                              & (coords["parametrisation"] == param)
                              & np.isclose(coords["fraction"], fraction)].sort_values("depth")
                if part.empty:
                    continue
                s = slopes[(slopes["dataset"] == dataset) & (slopes["block"] == block)
                           & (slopes["parametrisation"] == param) & np.isclose(slopes["fraction"], fraction)]
                label = param + (f": {_slope_text(s.iloc[0])}" if len(s) else "")
                ax.plot(part["depth"], part["rms_change"], marker="o", ms=3, color=colours[param], label=label)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            log_ticks(ax, "y")
            ax.set_xlabel("depth L" if i == len(facets) - 1 else "")
            ax.set_ylabel("RMS change of h_l" if j == 0 else "")
            steps = int(coords["steps"].iloc[0])
            ax.set_title(f"{dataset}, {block}, {names.get(fraction, fraction)} after {steps} steps", fontsize=8)
            ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
