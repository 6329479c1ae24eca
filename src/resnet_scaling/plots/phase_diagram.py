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


def support_colour(regime: str, support: float) -> np.ndarray:
    """The regime's colour faded towards white by its bootstrap support: a cell whose regime
    40 % of the draws give is pale, one that all give is the full colour."""
    colour = np.array(to_rgb(COLORS.get(regime, "#999999")))
    weight = float(support) if np.isfinite(support) else 1.0
    return 1.0 - weight * (1.0 - colour)


def _cell_text(r: pd.Series) -> str:
    support = r.get("support", np.nan)
    lines = [f"{r['regime']}" + (f" ({support:.0%})" if np.isfinite(support) else ""),
             f"exp. M {_interval(r['exponent'], r['exponent_ci_low'], r['exponent_ci_high'])}",
             "incr. ratio " + _interval(r["increment_ratio_slope"], r["increment_ratio_ci_low"],
                                        r["increment_ratio_ci_high"])]
    if "update_exponent" in r and np.isfinite(r["update_exponent"]):
        lines += [f"update: exp. {_interval(r['update_exponent'], r['update_exponent_ci_low'], r['update_exponent_ci_high'])}",
                  "incr. ratio " + _interval(r["update_increment_ratio_slope"], r["update_increment_ratio_ci_low"],
                                             r["update_increment_ratio_ci_high"])]
    if "n_depths" in r and "n_seeds" in r:
        lines.append(f"{int(r['n_depths'])} depths × {int(r['n_seeds'])} seeds")
    return "\n".join(lines)


def phase_diagram_figure(regimes: pd.DataFrame, path: str | os.PathLike) -> None:
    """One panel per activation: rows initialisation × residual scale, columns optimiser.

    A cell's colour is its regime faded by its bootstrap support (:func:`support_colour`); its
    text the exponent of M and the increment-ratio slope with 95 % intervals, of the trained
    weights and of the update (trained − initial), and the depths × seeds fitted."""
    activations = _ordered(regimes["activation"])
    rows = _ordered(zip(regimes["initialisation_label"], regimes["residual_scale_label"]))
    columns = _ordered(regimes["optimizer_label"])
    # cells sized for their six lines at CELL_FONT pt
    fig, axes = plt.subplots(1, len(activations), figsize=(2.4 + 3.4 * len(columns) * len(activations),
                                                           1.6 + 1.45 * len(rows)), squeeze=False)
    for ax, activation in zip(axes[0], activations):
        part = regimes[regimes["activation"] == activation]
        image = np.ones((len(rows), len(columns), 3))
        for _, r in part.iterrows():
            i = rows.index((r["initialisation_label"], r["residual_scale_label"]))
            j = columns.index(r["optimizer_label"])
            image[i, j] = support_colour(r["regime"], r.get("support", np.nan))
            dark = float(np.dot(image[i, j], (0.299, 0.587, 0.114))) < 0.55
            ax.text(j, i, _cell_text(r), ha="center", va="center", fontsize=CELL_FONT, color="white" if dark else "black")
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
    handles = [Patch(facecolor=support_colour(r, level), edgecolor="0.4", label=f"{r}, support {level:.0%}")
               for r in shown for level in (1.0, 0.5)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=CELL_FONT,
               bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Regime of the trained weights by training choice; colour faded by bootstrap support "
                 "(exponent of M and increment-ratio slope, 95 % seed-bootstrap intervals; update = trained − initial)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def anchor_figure(table: pd.DataFrame, slopes: pd.DataFrame, path: str | os.PathLike) -> None:
    """max_k ‖Z_{k+1} − Z_k‖ against L, one panel per anchor setting (the paper's on top).

    Per initialisation profile and weights the trained weights (solid), the update trained −
    initial (dash-dotted) and the initial weights (dotted, where not identically zero), with the
    fitted slopes and 95 % intervals in the legend. In the paper's setting (V₀ = 0, tied W₀) the
    initial increments are zero, so the trained and update increments coincide; V and W are
    drawn separately, in the variations Z = (V, W)."""
    part = table[table["statistic"] == "max_increment"]
    settings = _ordered(part["setting"]) if "setting" in part else [""]
    fig, axes = plt.subplots(len(settings), 1, figsize=(8.4, 3.6 * len(settings)), squeeze=False)
    styles = {"trained": ("o", "-"), "initial": ("x", ":"), "update": ("s", "-.")}
    for ax, setting in zip(axes[:, 0], settings):
        here = part[part["setting"] == setting] if "setting" in part else part
        profiles = _ordered(here["init_depth_profile"])
        weights = ["V", "W"] if len(profiles) == 1 else ["Z"]
        keys = [(p, w) for p in profiles for w in weights]
        colors = dict(zip(keys, sns.color_palette("deep")))
        for (profile, weight) in keys:
            for stage in ("trained", "update", "initial"):
                group = here[(here["init_depth_profile"] == profile) & (here["weights"] == weight) & (here["stage"] == stage)]
                if group.empty or not (group["value"] > 0).any():
                    continue
                fit = slopes[(slopes["experiment"] == group["experiment"].iloc[0]) & (slopes["stage"] == stage)
                             & (slopes["weights"] == weight) & (slopes["statistic"] == "max_increment")]
                label = f"{profile} init, {weight}, {stage}"
                if len(fit) and np.isfinite(fit.iloc[0]["slope"]):
                    f = fit.iloc[0]
                    label += f": slope {f['slope']:+.2f} [{f['slope_ci_low']:+.2f}, {f['slope_ci_high']:+.2f}]"
                medians = group.groupby("depth")["value"].median()
                marker, line = styles[stage]
                ax.plot(medians.index, medians.to_numpy(), label=label, color=colors[(profile, weight)], marker=marker,
                        linestyle=line, ms=4, lw=1.0)
                ax.scatter(group["depth"], group["value"], s=6, color=colors[(profile, weight)], alpha=0.3)
        trained = here[(here["stage"] == "trained") & (here["weights"] == weights[0])
                       & (here["init_depth_profile"] == profiles[0])].groupby("depth")["value"].median()
        if len(trained):
            depths = trained.index.to_numpy(dtype=float)
            # drawn 3 × above the first trained point, so that the data do not hide it
            ax.plot(depths, 3.0 * float(trained.iloc[0]) * (depths / depths[0]) ** -1.0, color="k", linestyle="--",
                    lw=1.2, label="reference slope −1 (Marion et al. 2024)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("depth L")
        ax.set_ylabel(r"$\max_k \|Z_{k+1} - Z_k\|$")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # off the data
        label = here["setting_label"].iloc[0] if "setting_label" in here and len(here) else setting
        ax.set_title(str(label), fontsize=8, wrap=True)
    fig.suptitle("Anchor (Marion et al. 2024, Fig. 1): h + V σ(W h + b)/L, step ∝ L", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
