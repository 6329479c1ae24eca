"""Figures of the regimes of the scaling stage (docs/maths.md §3), reading tidy tables only: the
regime of every experiment against the bands of the rule, and how robust its exponents are
(sliding depth windows, inclusion rules, per optimiser step). The figures against depth are
in :mod:`.scaling`, whose colours and labels these share.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..scaling.regime_rule import ROUGH_ODE, RegimeThresholds
from . import log_ticks, save_figure
from .scaling import LABELS, PALETTE, STAT_LABELS


def _band_patch(ax_or_none, lo: float, hi: float, name: str):
    """A regime's band: filled for ODE and SDE, hatched for the rough-weight ODE (it shares its
    exponent band with the ODE and its increment band with the SDE, so it must stay visible on
    top of them)."""
    style = (dict(facecolor="none", edgecolor=PALETTE[name], hatch="////", lw=0, alpha=0.9) if name == ROUGH_ODE
             else dict(facecolor=PALETTE[name], alpha=0.3 if name == "SDE" else 0.2, lw=0))
    if ax_or_none is None:
        return plt.Rectangle((0, 0), 1, 1, label=f"{name}: where the rule wants it", **style)
    return ax_or_none.axvspan(lo, hi, zorder=0, **style)


def _outside_reason(regime: str, key: str) -> str:
    if regime == "ODE" and key == "quadratic_variation":
        return "the ODE rule does not read it (smooth weights: slope −1 − 2β)"
    if regime == "neither":
        return "no regime's bands hold all three slopes: neither"
    return "outside every band (the regime came from the other slopes)"


def summary_figure(regimes: pd.DataFrame, thresholds: RegimeThresholds, path: str | os.PathLike) -> None:
    """The regime of every experiment at a glance: the three numbers the rule uses, with 95 %
    intervals, against the band each regime wants them in (ODE filled green, SDE filled purple,
    ODE with rough weights hatched); colour = regime, support in %; a note says why each point
    outside every band is there; one row per population of networks, the primary one marked."""
    regimes = regimes.reset_index(drop=True)
    n = len(regimes)
    th = thresholds
    panels = [
        ("exponent", f"exponent of {th.quantity} ({STAT_LABELS.get(th.exponent_statistic, th.exponent_statistic)})",
         [(th.ode_exponent - th.ode_exponent_tol, th.ode_exponent + th.ode_exponent_tol, "ODE"),
          (th.sde_exponent - th.sde_exponent_tol, th.sde_exponent + th.sde_exponent_tol, "SDE"),
          (th.ode_exponent - th.ode_exponent_tol, th.ode_exponent + th.ode_exponent_tol, ROUGH_ODE)]),
        ("increment_ratio", "increment-ratio slope",
         [(-np.inf, th.ode_increment_ratio_max, "ODE"), (-th.sde_increment_ratio_tol, th.sde_increment_ratio_tol, "SDE"),
          (-th.sde_increment_ratio_tol, th.sde_increment_ratio_tol, ROUGH_ODE)]),
        ("quadratic_variation", "quadratic-variation slope",
         [(-th.sde_quadratic_variation_tol, th.sde_quadratic_variation_tol, "SDE"),
          (th.rough_quadratic_variation - th.rough_quadratic_variation_tol,
           th.rough_quadratic_variation + th.rough_quadratic_variation_tol, ROUGH_ODE)]),
    ]
    notes = []
    for key, label, bands in panels:
        value = regimes[key] if key == "exponent" else regimes[f"{key}_slope"]
        for i, v in enumerate(value):
            if np.isfinite(v) and not any(lo <= v <= hi for lo, hi, _ in bands):
                regime = regimes.loc[i, "regime"]
                who = regimes.loc[i, "experiment"] + (f" ({regimes.loc[i, 'population']})" if "population" in regimes else "")
                notes.append(f"{who}, {label} {v:+.2f}: {_outside_reason(regime, key)}")
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 1.6 + 0.45 * n + 0.16 * len(notes)), sharey=True)
    y = np.arange(n)
    for ax, (key, label, bands) in zip(axes, panels):
        value = regimes[key] if key == "exponent" else regimes[f"{key}_slope"]
        low, high = regimes[f"{key}_ci_low"], regimes[f"{key}_ci_high"]
        colors = [PALETTE.get(r, "0.5") for r in regimes["regime"]]
        ax.hlines(y, low, high, colors=colors, lw=2)
        ax.scatter(value, y, c=colors, s=30, zorder=3, edgecolor="k", lw=0.4)
        edges = np.array([*low, *high, *value, *[e for lo, hi, _ in bands for e in (lo, hi)]], dtype=float)
        edges = edges[np.isfinite(edges)]
        pad = 0.05 * (edges.max() - edges.min())
        left, right = edges.min() - pad, edges.max() + pad
        for lo, hi, name in bands:  # a one-sided band runs to the edge of the axis
            _band_patch(ax, max(lo, left), min(hi, right), name)
        ax.set_xlim(left, right)
        ax.set_xlabel(label, fontsize=8)
    names = regimes["experiment"].astype(str)
    if "population" in regimes:  # one row per population: which networks, and which gives the verdict
        primary = regimes["primary"].astype(str).str.lower().isin(["true", "1"])
        names = names + "\n" + regimes["population"].astype(str) + np.where(primary, " (primary)", "")
    axes[0].set_yticks(y, names, fontsize=7)
    axes[0].invert_yaxis()
    for i, r in regimes.iterrows():
        support = r.get("support", np.nan)
        text = f"{r['regime']}" + (f" ({support:.0%})" if np.isfinite(support) else "")
        axes[-1].annotate(text, (1.02, i), xycoords=("axes fraction", "data"), va="center", fontsize=8,
                          color=PALETTE.get(r["regime"], "0.3"), annotation_clip=False)
    handles = [_band_patch(None, 0, 1, k) for k in ("ODE", "SDE", ROUGH_ODE)]
    height = fig.get_figheight()
    fig.suptitle("The regime of each experiment: the three slopes of the rule (docs/maths.md §3) with 95 % "
                 "seed-bootstrap intervals; colour = regime (bootstrap support)", fontsize=9, y=1 - 0.08 / height)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.3 / height), ncol=3, fontsize=7,
               frameon=False)
    bottom = 0.0
    if notes:
        text = "Points outside every band:\n" + "\n".join(notes)
        fig.text(0.01, 0.01, text, fontsize=7, va="bottom", ha="left")
        bottom = (0.13 * (len(notes) + 1) + 0.1) / height
    fig.tight_layout(rect=(0, bottom, 0.88, 1 - 0.42 / height))
    save_figure(fig, path)


def robustness_figure(robustness: pd.DataFrame, path: str | os.PathLike) -> None:
    """Per experiment: the local exponent of the primary quantity against depth (sliding
    windows), and its exponent under each inclusion rule, per optimiser step, and the
    exponent of the step count itself; max and RMS norm, 95 % seed-bootstrap intervals."""
    table = robustness[robustness["primary"].astype(bool)]
    experiments = list(dict.fromkeys(table["experiment"]))
    fig, axes = plt.subplots(max(len(experiments), 1), 2, figsize=(11, 3.0 * max(len(experiments), 1)),
                             squeeze=False, gridspec_kw={"width_ratios": [1.2, 1]})
    colors = {"max_norm": "#d95f02", "rms_norm": "#1b9e77", "optimiser_steps": "0.3"}
    for row, experiment in zip(axes, experiments):
        part = table[table["experiment"] == experiment]
        quantity = next(q for q in part["quantity"] if q != "steps")
        local = part[(part["analysis"] == "window") & part["statistic"].isin(["max_norm", "rms_norm"])]
        if "population" not in local:
            local = local.assign(population="")
        populations = list(dict.fromkeys(local["population"].fillna("")))
        for (statistic, population), group in local.groupby(["statistic", local["population"].fillna("")]):
            group = group.sort_values("depth_centre")
            style = ("-", "--", ":")[populations.index(population) % 3]
            row[0].plot(group["depth_centre"], group["exponent"], marker="o", ms=3, color=colors[statistic], ls=style,
                        label=f"{STAT_LABELS[statistic]} of {LABELS[quantity]}" + (f", {population}" if population else ""))
            row[0].fill_between(group["depth_centre"], group["ci_low"], group["ci_high"], color=colors[statistic],
                                alpha=0.15, lw=0)
        row[0].set(xscale="log", xlabel="depth L (window centre)", ylabel="local exponent",
                   title=f"{experiment}: local slope over {_window_size(local)} consecutive depths")
        log_ticks(row[0], "x")
        row[0].legend(fontsize=7)
        others = part[(part["analysis"] != "window")
                      & part["statistic"].isin(["max_norm", "rms_norm", "optimiser_steps"])].copy()
        others["label"] = np.where(others["quantity"] == "steps", "exponent of the step count",
                                   others["variant"].str.replace("statistic per optimiser step", "per optimiser step"))
        labels = list(dict.fromkeys(others["label"]))
        _interval_rows(row[1], others, labels, colors)
        row[1].set_yticks(range(len(labels)), labels, fontsize=7)
        row[1].set_ylim(len(labels) - 0.5, -0.5)
        row[1].set(xlabel="exponent (95 % interval)", title="by inclusion rule and per optimiser step")
        row[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)


#: Vertical offset of each statistic inside a row of the interval panel (rows are one unit apart).
_ROW_OFFSETS = {"max_norm": -0.2, "rms_norm": 0.2, "optimiser_steps": 0.0}


def _interval_rows(ax, others: pd.DataFrame, labels: list[str], colors: dict) -> None:
    """One row per label: each statistic's exponent with its 95 % interval, its value written
    right of the interval (rows and statistics far enough apart that values never meet), the
    x range widened to hold them; a row without any network says ``n = 0``."""
    x_all = others[["exponent", "ci_low", "ci_high"]].to_numpy(dtype=float)
    finite = x_all[np.isfinite(x_all)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    span = max(hi - lo, 0.05)
    for statistic, group in others.groupby("statistic", sort=False):
        y = np.array([labels.index(v) for v in group["label"]]) + _ROW_OFFSETS.get(statistic, 0.0)
        x = group["exponent"].to_numpy(dtype=float)
        low, high = group["ci_low"].to_numpy(dtype=float), group["ci_high"].to_numpy(dtype=float)
        err = np.vstack([x - low, high - x])
        ax.errorbar(x, y, xerr=err, fmt="o", ms=4, color=colors[statistic], capsize=2,
                    label=STAT_LABELS.get(statistic, "optimiser steps"))
        for xi, yi, hi_i in zip(x, y, high):
            if np.isfinite(xi):
                right = hi_i if np.isfinite(hi_i) else xi
                ax.annotate(f"{xi:.2f}", (right, yi), textcoords="offset points", xytext=(4, 0), va="center",
                            fontsize=7, color=colors[statistic])
    for i, label in enumerate(labels):
        rows = others[others["label"] == label]
        if not np.isfinite(rows["exponent"].to_numpy(dtype=float)).any():
            ax.text(lo + span / 2, i, f"n = {int(rows['n_networks'].fillna(0).max())}: no network enters this fit",
                    ha="center", va="center", fontsize=7, color="0.35")
    ax.set_xlim(lo - 0.06 * span, hi + 0.16 * span)


def _window_size(local: pd.DataFrame) -> str:
    sizes = local["n_depths"][local["n_depths"] > 0]
    return str(int(sizes.max())) if len(sizes) else "0"
