"""Figures of the limit stage (docs/maths.md §4), one function per figure, reading only the tables
written by :mod:`resnet_scaling.limits`.

Fitted slopes come from ``convergence_fits.csv`` (OLS of log error on log L, 95 % t-interval);
the slopes predicted by docs/maths.md §4 are overlaid as grey dashed guides.
"""

from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..scaling.tables import read_table
from . import save_figure, slope_guide


def _depth_axis(ax, depths) -> None:
    ax.set_xscale("log", base=2)
    ticks = np.unique(np.asarray(depths, dtype=int))
    if len(ticks) > 8:
        ticks = ticks[:: math.ceil(len(ticks) / 8)]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()


def _series_label(case: str, activation: str, beta: float, ito) -> str:
    if case == "neural_ode":
        return f"neural ODE ({activation})"
    if case == "linear_ode":
        return f"linear ODE ({activation}, β={beta:g})"
    return "diffusive, " + ("with ½σ''(0) term" if str(ito) == "True" else "without it")


def _fit_row(fits: pd.DataFrame, case, activation, beta, ito, statistic="error"):
    f = fits[(fits.case == case) & (fits.activation == activation) & np.isclose(fits.beta, beta)
             & (fits.with_ito_term.astype(str) == str(ito)) & (fits.statistic == statistic)]
    return None if f.empty else f.iloc[0]


def convergence_figure(table: pd.DataFrame, fits: pd.DataFrame, path: str | os.PathLike) -> None:
    """Synthetic weights against their known limits: sup-errors of the ODE cases (left), the
    diffusive case with and without the Itô term, RMS and median over paths (middle), and the
    generic diffusion in law against the Monte Carlo floor (right)."""
    table = table.copy()
    table["with_ito_term"] = table["with_ito_term"].fillna("").astype(str)
    fits = fits.copy()
    fits["with_ito_term"] = fits["with_ito_term"].fillna("").astype(str)
    generic = table[table.case.str.startswith("generic")]
    panels = ["ode", "diffusive"] + (["generic"] if len(generic) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    palette = iter(sns.color_palette("deep", 12))
    for (case, act, beta, ito), g in table[~table.case.str.startswith("generic")].groupby(
        ["case", "activation", "beta", "with_ito_term"], sort=False
    ):
        ax = axes["ode" if case.endswith("_ode") else "diffusive"]
        color = next(palette)
        g = g.sort_values("L")
        f = _fit_row(fits, case, act, beta, ito)
        label = _series_label(case, act, beta, ito)
        if f is not None:
            label += f": {f.slope:+.2f} [{f.ci_low:+.2f}, {f.ci_high:+.2f}], theory {f.expected:+.2f}"
        ax.plot(g.L, g.error, "o-", color=color, label=label, ms=4)
        if case == "diffusive":
            fm = _fit_row(fits, case, act, beta, ito, "error_median")
            mlabel = "  median" + (f": {fm.slope:+.2f} [{fm.ci_low:+.2f}, {fm.ci_high:+.2f}]" if fm is not None else "")
            ax.plot(g.L, g.error_median, "s:", color=color, label=mlabel, ms=3)
        if f is not None:
            gf = g[g.L >= f.L_min]
            slope_guide(ax, gf.L, gf.error, f.expected, color="0.4", ls="--", lw=1)
    for key, title in (("ode", "ODE limits (§4(a), (b)): sup_k |h_k − H_{k/L}|"),
                       ("diffusive", "Itô SDE (§4(c)): (E sup_k |h_k − H_{k/L}|²)^{1/2}")):
        ax = axes[key]
        ax.set_yscale("log")
        _depth_axis(ax, table.L)
        ax.set_xlabel("depth L")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, loc="lower left")
    if "generic" in axes:
        ax = axes["generic"]
        names = {"generic_network": "ReLU networks", "generic_moment_matched": "moment-matched diffusion",
                 "generic_floor": "two reference samples (Monte Carlo floor)"}
        for case, g in generic.groupby("case", sort=False):
            g = g.sort_values("L")
            style = "k--" if case == "generic_floor" else "o-"
            ax.plot(g.L, g.error, style, label=names.get(case, case), ms=4)
        ax.set_yscale("log")
        _depth_axis(ax, generic.L)
        ax.set_xlabel("depth L")
        ax.set_ylabel("Wasserstein-1 to the exact diffusion (mean over coordinates)")
        ax.set_title("random-sign ReLU layers (§4(d)), in law", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Networks against their limits on synthetic weights (grey dashed: slope of docs/maths.md §4)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def trajectories_figure(traj: pd.DataFrame, path: str | os.PathLike) -> None:
    """Hidden-state coordinates against t = k/L for a few inputs: the trained network (first
    seed), its limit driven by its own coarsened weights, and draws of the generative limit."""
    inputs = sorted(traj.input.unique())
    coords = sorted(traj.coordinate.unique())
    fig, axes = plt.subplots(len(inputs), len(coords), figsize=(4.2 * len(coords), 2.8 * len(inputs)), squeeze=False)
    styles = {"network": dict(color="k", lw=1.4), "pathwise limit": dict(color="C1", ls="--", marker=".", ms=3, lw=1),
              "generative limit": dict(color="C0", lw=0.8, alpha=0.6)}
    for i, inp in enumerate(inputs):
        for j, c in enumerate(coords):
            ax = axes[i, j]
            part = traj[(traj.input == inp) & (traj.coordinate == c)]
            for (source, draw), g in part.groupby(["source", "draw"], sort=False):
                label = source if draw == 0 and i == 0 and j == 0 else None
                ax.plot(g.t, g.value, label=label, **styles.get(source, {}))
            ax.set_title(f"input {inp}, coordinate {c}", fontsize=8)
            ax.set_xlabel("t = k/L")
    axes[0, 0].legend(fontsize=7)
    r = traj.iloc[0]
    fig.suptitle(f"{r.experiment}: depth {r.depth}, limit {r.limit} (regime {r.regime})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def error_figure(pathwise: pd.DataFrame, generative: pd.DataFrame, path: str | os.PathLike) -> None:
    """Error against depth: pathwise relative sup error (the limit driven by the network's own
    weights on N blocks; N = L is the Taylor remainder of the scheme), and the generative
    limit's relative output error and test-loss ratio (mean over seeds)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.4, 4.2))
    g0 = generative.iloc[0]
    if len(pathwise):
        pw = pathwise.copy()
        pw["N"] = np.where(pw.measures == "taylor_remainder", "N = L", pw.n_steps.astype(str))
        pw["series"] = pw["N"] + np.where(pw.form == "realised", " (realised squares)", "")
        pw["order"] = np.where(pw.measures == "taylor_remainder", np.inf, pw.n_steps) + np.where(pw.form == "realised", 0.5, 0)
        pw = pw.sort_values(["order", "depth"])
        mean = pw.groupby(["series", "depth"], sort=False).relative_error.mean().reset_index()
        sns.lineplot(data=mean, x="depth", y="relative_error", hue="series", marker="o", ax=ax1)
        ax1.set_ylabel("relative sup error (mean over seeds)")
        ax1.set_yscale("log")
        _depth_axis(ax1, mean.depth)
        ax1.legend(fontsize=7, title="steps N")
    else:
        ax1.text(0.5, 0.5, "no pathwise limit:\nthe moment-matched diffusion\nis compared in law only (docs/maths.md §4(d))",
                 ha="center", va="center", transform=ax1.transAxes, fontsize=9)
        ax1.set_xticks([])
        ax1.set_yticks([])
    ax1.set_title("pathwise: sup_k |h_k − H_{k/L}| / sup_k |h_k − h_0|", fontsize=9)
    gen = generative.copy()
    gen["loss ratio (limit / network)"] = gen.test_loss_limit / gen.test_loss_network
    long = gen.melt(id_vars=["depth", "variant"], value_vars=["relative_output_error", "loss ratio (limit / network)"],
                    var_name="measure", value_name="value")
    long["series"] = long.measure + ", " + long.variant
    sns.lineplot(data=long, x="depth", y="value", hue="series", marker="o", ax=ax2)
    ax2.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax2.set_yscale("log")
    _depth_axis(ax2, long.depth)
    ax2.legend(fontsize=7)
    ax2.set_title("generative: output error and test-loss ratio", fontsize=9)
    fig.suptitle(f"{g0.experiment}: limit {g0.limit} (regime {g0.regime}), {int(g0.n_seeds)} seeds", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def coefficients_figure(coefficients: pd.DataFrame, path: str | os.PathLike) -> None:
    """Kernel estimates against t for every fitted depth (mean over seeds, band = range):
    drift ‖Ā(t)‖, ‖b̄(t)‖, L δ̄(t) and the trace of the local covariance."""
    quantities = ["drift_A_norm", "drift_b_norm", "delta_bar", "diffusion_trace"]
    titles = {"drift_A_norm": "‖Ā(t)‖ (smoothed L M_k)", "drift_b_norm": "‖b̄(t)‖ (smoothed L m_k)",
              "delta_bar": "smoothed L δ_k", "diffusion_trace": "trace of the local covariance"}
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    c = coefficients.copy()
    c["depth"] = c["depth"].astype(str)
    for ax, q in zip(axes, quantities):
        sns.lineplot(data=c[c.quantity == q], x="t", y="value", hue="depth", errorbar=("pi", 100), ax=ax)
        ax.set_title(titles[q], fontsize=9)
        ax.legend(fontsize=7, title="depth")
    r = coefficients.iloc[0]
    fig.suptitle(f"{r.experiment}: estimated drift and diffusion (limit {r.limit})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def fit_figures(inputs: dict, outputs: dict) -> None:
    """The three figures of one experiment from the tables of ``limits.write_fit``: ``inputs``
    trajectories, pathwise, generative, coefficients (CSV); ``outputs`` trajectories, error,
    coefficients."""
    trajectories_figure(read_table(inputs["trajectories"]), outputs["trajectories"])
    # the moment-matched diffusion is compared in law only: no pathwise rows
    error_figure(read_table(inputs["pathwise"], allow_empty=True), read_table(inputs["generative"]), outputs["error"])
    coefficients_figure(read_table(inputs["coefficients"]), outputs["coefficients"])
