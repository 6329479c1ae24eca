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
from . import log_ticks, save_figure, slope_guide


def _depth_axis(ax, depths) -> None:
    """A log-2 depth axis over exactly the depths drawn, labelled at (up to 8 of) them."""
    ax.set_xscale("log", base=2)
    ticks = np.unique(np.asarray(depths, dtype=int))
    if len(ticks) > 8:
        ticks = ticks[:: math.ceil(len(ticks) / 8)]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    lo, hi = float(np.min(depths)), float(np.max(depths))
    ax.set_xlim(lo / 1.25, hi * 1.25)


def _excludes(fit) -> bool:
    """Whether the fit's 95 % interval, as the legend prints it (two decimals), excludes the
    theoretical rate."""
    return bool(round(fit.ci_low, 2) > round(fit.expected, 2) or round(fit.ci_high, 2) < round(fit.expected, 2))


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
        flagged = f is not None and _excludes(f)
        if f is not None:
            label += f": {f.slope:+.2f} [{f.ci_low:+.2f}, {f.ci_high:+.2f}], theory {f.expected:+.2f}"
            label += " ✗" if flagged else ""
        ax.plot(g.L, g.error, "o-", color=color, label=label, ms=4, mfc="white" if flagged else color)
        if case == "diffusive":
            fm = _fit_row(fits, case, act, beta, ito, "error_median")
            mlabel = "  median" + (f": {fm.slope:+.2f} [{fm.ci_low:+.2f}, {fm.ci_high:+.2f}]" if fm is not None else "")
            ax.plot(g.L, g.error_median, "s:", color=color, label=mlabel, ms=3)
        if f is not None:
            gf = g[g.L >= f.L_min]
            slope_guide(ax, gf.L, gf.error, f.expected, color="0.4", ls="--", lw=1)
    panels_text = {
        "ode": ("ODE limits (docs/maths.md §4(a), (b))", "sup_k |h_k − H(k/L)|  (RMS over paths)"),
        "diffusive": ("Itô SDE (docs/maths.md §4(c)), RMS and median over paths", "(E sup_k |h_k − H(k/L)|²)^½"),
    }
    flagged_any = False
    for key, (title, ylabel) in panels_text.items():
        ax = axes[key]
        part = table[table.case.str.endswith("_ode") if key == "ode" else (table.case == "diffusive")]
        ax.set_yscale("log")
        _depth_axis(ax, part.L)
        ax.set(xlabel="depth L", ylabel=ylabel)
        log_ticks(ax, "y")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        flagged_any |= any("✗" in text.get_text() for text in ax.get_legend().get_texts())
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
        log_ticks(ax, "y")
        ax.set_xlabel("depth L")
        ax.set_ylabel("Wasserstein-1 to the exact diffusion\n(mean over coordinates)")
        ax.set_title("random-sign ReLU layers (§4(d)), in law", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Networks against their limits on synthetic weights (grey dashed: slope of docs/maths.md §4)", fontsize=10)
    if flagged_any:
        fig.text(0.5, 0.005, "✗ (hollow points): the 95 % interval of the fitted slope excludes the theoretical rate "
                 "at these depths; docs/maths.md §4(b) gives the slopes measured where the rate is slow to set in.",
                 ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.03 if flagged_any else 0, 1, 1))
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


#: Plain names of the limits (docs/maths.md §4) and of the generative variants beside them.
LIMIT_NAMES = {"neural_ode": "neural ODE", "linear_ode": "linear ODE", "ito_sde": "Itô SDE",
               "moment_matched": "moment-matched diffusion"}


def _variant_name(variant: str, limit: str) -> str:
    name = LIMIT_NAMES.get(limit, limit)
    return {"limit": name, "limit_pooled": f"{name}, seeds pooled into one law",
            "trend_only": f"drift of the {name} alone (no noise)",
            "mean_field_ode": "mean-field ODE (docs/maths.md §4(e))"}.get(variant, variant.replace("_", " "))


def error_figure(pathwise: pd.DataFrame, generative: pd.DataFrame, path: str | os.PathLike) -> None:
    """Error against depth, one quantity per panel: the pathwise relative sup error (the limit
    driven by the network's own weights on N blocks; N = L is the Taylor remainder of the
    scheme; drawn only where the limit has a pathwise form), the generative limit's relative
    output error, and its test-loss ratio (means over seeds)."""
    g0 = generative.iloc[0]
    panels = (["pathwise"] if len(pathwise) else []) + ["output", "loss"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    if len(pathwise):
        ax1 = axes["pathwise"]
        pw = pathwise.copy()
        pw["N"] = np.where(pw.measures == "taylor_remainder", "N = L (Taylor remainder)", "N = " + pw.n_steps.astype(str))
        pw["series"] = pw["N"] + np.where(pw.form == "realised", ", realised squares", "")
        pw["order"] = np.where(pw.measures == "taylor_remainder", np.inf, pw.n_steps) + np.where(pw.form == "realised", 0.5, 0)
        pw = pw.sort_values(["order", "depth"])
        mean = pw.groupby(["series", "depth"], sort=False).relative_error.mean().reset_index()
        sns.lineplot(data=mean, x="depth", y="relative_error", hue="series", marker="o", ax=ax1)
        ax1.set(xlabel="depth L", ylabel="sup_k |h_k − H(k/L)| / sup_k |h_k − h_0|", yscale="log")
        _depth_axis(ax1, mean.depth)
        log_ticks(ax1, "y")
        ax1.legend(fontsize=7, title="steps N of the limit", title_fontsize=7)
        ax1.set_title("pathwise, on the network's own weights", fontsize=9)
    gen = generative.copy()
    gen["name"] = [_variant_name(v, g0.limit) for v in gen.variant]
    gen["loss_ratio"] = gen.test_loss_limit / gen.test_loss_network
    order = list(dict.fromkeys(gen["name"]))
    for key, column, ylabel, title in (
        ("output", "relative_output_error", "|mean output of limit − network| / |h_L − x|", "generative: output error"),
        ("loss", "loss_ratio", "test loss of the limit / of the network", "generative: test-loss ratio"),
    ):
        ax = axes[key]
        sns.lineplot(data=gen, x="depth", y=column, hue="name", hue_order=order, marker="o", ax=ax, errorbar=None)
        if key == "loss":
            ax.axhline(1.0, color="0.5", lw=0.8, ls=":", label="as good as the network")
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        else:
            ax.set_yscale("log")
        _depth_axis(ax, gen.depth)
        if key == "output":
            log_ticks(ax, "y")
        ax.set(xlabel="depth L", ylabel=ylabel)
        ax.legend(fontsize=7, title="mean over seeds", title_fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{g0.experiment}: {LIMIT_NAMES.get(g0.limit, g0.limit)} (regime {g0.regime}), {int(g0.n_seeds)} seeds",
                 fontsize=10)
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


PATHWISE_PANELS = (
    ("hidden_state_quadratic_variation", 0, "Σ_k |h_{k+1} − h_k|² (mean over inputs)", "hidden state: quadratic variation"),
    ("coarsening_error", None, "|h_L^N − h_L| / |h_L − h_0|", "coarsened network at N = {n} blocks"),
    ("adjoint_quadratic_variation", 0, "Σ_k |p_{k+1} − p_k|² / |p_L|²", "adjoint: quadratic variation"),
    ("update_rms_norm", 0, "RMS_k ‖M_k − M_k(init)‖_F", "update (trained − initial)"),
)


def pathwise_figure(networks_csv, slopes_csv, verdicts_csv, pdf, png, cfg: dict) -> None:
    """The pathwise signatures of every experiment's primary population against depth, one
    quantity per panel, mean over networks with the seed-bootstrap slope and interval in the
    legend; dashed guides at slope 0 (SDE) and −1 (ODE) on the quadratic variations. The
    verdict of each experiment is in its legend label."""
    networks, slopes, verdicts = read_table(networks_csv), read_table(slopes_csv), read_table(verdicts_csv)
    primary = verdicts[(verdicts.primary.astype(str) == "True") & (verdicts.direction == "forward")]
    n_blocks = int(cfg["verdict_blocks"])
    fig, axes = plt.subplots(1, len(PATHWISE_PANELS), figsize=(4.4 * len(PATHWISE_PANELS), 4.4), squeeze=False)
    palette = dict(zip(primary.experiment, sns.color_palette("tab10", max(len(primary), 1))))
    depths_drawn = []
    for ax, (quantity, blocks, ylabel, title) in zip(axes[0], PATHWISE_PANELS):
        blocks = n_blocks if blocks is None else blocks
        for v in primary.itertuples():
            members = networks[(networks.experiment == v.experiment) & networks.status.isin(v.population.split("+"))
                               & (networks.quantity == quantity) & (networks.n_blocks == blocks)]
            if members.empty:
                continue
            mean = members.groupby("depth").value.mean()
            fit = slopes[(slopes.experiment == v.experiment) & (slopes.population == v.population)
                         & (slopes.quantity == quantity) & (slopes.n_blocks == blocks) & (slopes.against == "depth")]
            label = v.experiment
            if len(fit) and np.isfinite(fit.slope.iloc[0]):
                f = fit.iloc[0]
                label += f": {f.slope:+.2f} [{f.ci_low:+.2f}, {f.ci_high:+.2f}]"
            if quantity == "hidden_state_quadratic_variation":
                label += f" → {v.verdict}"
            ax.plot(mean.index, mean.values, marker="o", ms=3, color=palette[v.experiment], label=label)
            depths_drawn += list(mean.index)
            if quantity.endswith("quadratic_variation"):
                for guide in (0.0, -1.0):
                    slope_guide(ax, mean.index, mean.values, guide, color="0.6", lw=0.8, ls="--")
        ax.set_yscale("log")
        if depths_drawn:
            _depth_axis(ax, depths_drawn)
        ax.set(xlabel="depth L", ylabel=ylabel)
        ax.set_title(title.format(n=blocks), fontsize=9)
        ax.legend(fontsize=6, title="slope in L [95 % interval]", title_fontsize=6)
    n_seeds = networks.groupby(["experiment", "depth"]).seed.nunique().max() if len(networks) else 0
    fig.suptitle("Pathwise signatures on each network's own path (grey dashed: slope 0, SDE; slope −1, ODE); "
                 f"primary populations, up to {n_seeds} seeds per depth", fontsize=10)
    fig.tight_layout()
    save_figure(fig, png)
