"""Figures of the scaling stage against depth (docs/maths.md §3), one function per figure, reading
tidy tables only; the regime figures are in :mod:`.regimes`.

Every fitted line comes from ``exponents.csv`` (OLS on log-log over the fit window, 95 %
seed-bootstrap interval in the legend); theory slopes of the two hypotheses are overlaid as
grey guides: dashed H1 (smooth), dotted H2 (diffusive).
"""

from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogFormatterSciNotation, NullFormatter
import pandas as pd
import seaborn as sns

from ..scaling.exponents import primary_rows
from ..scaling.statistics import expected_slope
from ..scaling.weights import INCLUDE_STATUS, primary_quantity
from . import log_ticks, save_figure

STATUS_MARKERS = {"converged": "o", "stopped": "X", "max_epochs": "s", "diverged": "D"}
#: The colour of each regime (the regime figures of :mod:`.regimes`, the phase diagram).
PALETTE = {"ODE": "#1b9e77", "SDE": "#7570b3", "ODE (rough weights)": "#66a61e", "neither": "#d95f02",
           "undetermined": "#999999"}
LABELS = {"A": "A", "b": "b", "delta": "|δ|", "M": "M = δA", "m": "m = δb", "M_abs": "|δ|A", "m_abs": "|δ|b"}
TEX = {"A": "A", "b": "b", "delta": r"|\delta|", "M": "M", "m": "m", "M_abs": r"|\delta|A", "m_abs": r"|\delta|b"}
STAT_LABELS = {
    "max_norm": "max norm", "rms_norm": "RMS norm", "root_sum_squares": "root sum of squares",
    "max_increment": "max increment", "increment_ratio": "increment ratio",
    "quadratic_variation": "quadratic variation", "cumulative_sum": "cumulative sum",
    "detrended_cumsum": "detrended cumulative sum",
}


def _log_axes(ax) -> None:
    """Log-log axes labelled at the decades only (minor labels collide on short ranges)."""
    ax.set(xscale="log", yscale="log")
    ax.autoscale_view()
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        lo, hi = axis.get_view_interval()
        if lo > 0 and hi / lo > 12:
            axis.set_major_formatter(LogFormatterSciNotation())
            axis.set_minor_formatter(NullFormatter())
        else:  # about a decade: round values, as plain numbers
            log_ticks(ax, name)


def _grid(n: int, ncols: int = 3, size: tuple[float, float] = (3.6, 3.0), **kw):
    """``n`` panels in rows of ``ncols``, or of one fewer where that fills every row (4 panels:
    2 × 2, not 3 + 1 with two empty slots)."""
    ncols = max(1, min(ncols, n))
    if ncols >= 3 and n % ncols and n % (ncols - 1) == 0:
        ncols -= 1
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _fit_row(exponents: pd.DataFrame, experiment: str, quantity: str, statistic: str):
    """The fit of the experiment's primary population (None when there is none)."""
    exponents = primary_rows(exponents)
    hit = exponents[
        (exponents["experiment"] == experiment)
        & (exponents["quantity"] == quantity)
        & (exponents["statistic"] == statistic)
    ]
    return None if hit.empty else hit.iloc[0]


def _draw_fit(ax, fit, color, name: str, symbol: str, slope: bool = False) -> str:
    """Draw the fitted line over its window; return the legend text, naming the population the
    fit describes when the table has populations."""
    if fit is None or not np.isfinite(fit["slope"]):
        reason = fit.get("population_note") if fit is not None else ""
        return f"{name}: no fit" + (f" ({reason})" if isinstance(reason, str) and reason else "")
    x = np.geomspace(fit["min_depth"], fit["max_depth"], 50)
    ax.plot(x, np.exp(fit["intercept"]) * x ** fit["slope"], color=color, lw=1.4)
    population = f", {fit['population']}" if isinstance(fit.get("population"), str) else ""
    if slope:
        return (f"{name}: slope {fit['slope']:+.2f} [{fit['slope_ci_low']:+.2f}, {fit['slope_ci_high']:+.2f}]"
                f"{population}")
    return f"{name}: {symbol} = {fit['exponent']:.2f} [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]{population}"


def _guide(ax, x0: float, y0: float, slope: float, x1: float, style: str) -> None:
    x = np.array([x0, x1])
    ax.plot(x, y0 * (x / x0) ** slope, color="0.45", lw=0.9, ls=style, zorder=0)


def _points(ax, data: pd.DataFrame, color, included: pd.Series) -> set[str]:
    """Every network as a point, its marker its final status (:data:`STATUS_MARKERS`); networks
    outside the fits grey. Returns the statuses drawn."""
    drawn = set()
    for status, marker in STATUS_MARKERS.items():
        mine = data["status"] == status
        for inside, kw in ((True, {"color": color, "alpha": 0.7}), (False, {"color": "0.55", "alpha": 0.8})):
            rows = mine & (included if inside else ~included)
            if rows.any():
                ax.scatter(data.loc[rows, "depth"], data.loc[rows, "value"], s=12 if marker == "o" else 16,
                           marker=marker, lw=0, **kw)
                drawn.add(status)
    return drawn


def _status_handles(statuses: set[str]) -> list:
    """Legend entries of the status markers drawn."""
    return [plt.Line2D([], [], color="0.3", marker=m, ls="", ms=4, label=s)
            for s, m in STATUS_MARKERS.items() if s in statuses]


GUIDE_STYLES = {"H1": ("--", "H1, smooth weights"), "H2": (":", "H2, diffusive weights")}


def _guide_handles(slopes: dict[str, float]) -> list:
    """Legend entries of the grey guides: the slope each hypothesis predicts."""
    return [plt.Line2D([], [], color="0.45", lw=0.9, ls=GUIDE_STYLES[h][0],
                       label=f"{GUIDE_STYLES[h][1]}: slope {v:+.2f}") for h, v in slopes.items() if np.isfinite(v)]


def _excluded_handle(data: pd.DataFrame, include_status) -> list:
    """The legend entry of the networks left out of the fits, where a panel has any."""
    if _included(data, include_status).all():
        return []
    return [plt.Line2D([], [], color="0.55", marker="o", ls="", ms=4, label="grey: network outside the fit (status)")]


def _included(data: pd.DataFrame, include_status) -> pd.Series:
    return data["finite"].astype(bool) & data["status"].isin(list(include_status))


def _experiments(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["experiment"]))


def _title(ax, table: pd.DataFrame, experiment: str) -> None:
    row = table[table["experiment"] == experiment].iloc[0]
    parts = [experiment]
    if "activation" in row and "delta" in row:
        parts.append(f"{row['activation']}, δ {row['delta']}, {row.get('dataset', '')}")
    ax.set_title("\n".join(parts), fontsize=8)


def max_norm_figure(statistics: pd.DataFrame, exponents: pd.DataFrame, path: str | os.PathLike,
                    include_status=INCLUDE_STATUS) -> None:
    """Max norm against depth, log-log, one panel per experiment: A and |δ| for shared δ,
    |δ_k|A_k for per-layer δ, A otherwise; every network a point marked by its final status
    (grey when outside the fits), the fitted line of the primary population and its exponent
    with the 95 % interval; grey dotted guide of slope −1/2 (H2)."""
    exps = _experiments(statistics)
    fig, axes = _grid(len(exps))
    colors = sns.color_palette("deep")
    for ax, exp in zip(axes, exps):
        part = statistics[(statistics["experiment"] == exp) & (statistics["statistic"] == "max_norm")]
        delta_type = part["delta"].iloc[0] if "delta" in part else "none"
        quantities = {"shared": ["A", "delta"], "multi": ["M_abs"]}.get(delta_type, [primary_quantity(delta_type)])
        handles, statuses = [], set()
        for color, q in zip(colors, quantities):
            data = part[part["quantity"] == q]
            if data.empty:
                continue
            statuses |= _points(ax, data, color, _included(data, include_status))
            symbol = "α" if q == "delta" else "β"
            label = _draw_fit(ax, _fit_row(exponents, exp, q, "max_norm"), color, LABELS[q], symbol)
            handles.append(plt.Line2D([], [], color=color, lw=1.4, label=label))
        handles += _status_handles(statuses)
        if not part.empty:
            ref = part[part["quantity"] == quantities[0]]
            L0, L1 = ref["depth"].min(), ref["depth"].max()
            _guide(ax, L0, ref.loc[ref["depth"] == L0, "value"].median(), -0.5, L1, ":")
            handles += _guide_handles({"H2": -0.5}) + _excluded_handle(part, include_status)
        ax.set(xlabel="depth L", ylabel="max norm of " + " and ".join(LABELS[q] for q in quantities)
               + r",  $\max_k \|X_k\|$")
        _log_axes(ax)
        ax.legend(handles=handles, fontsize=6, loc="best")
        _title(ax, part if not part.empty else statistics, exp)
    fig.tight_layout()
    save_figure(fig, path)


#: Rows of the hypothesis figure: the three statistics the regime rule reads (docs/maths.md §3)
#: and the root sum of squares of the original study, each with the definition on its axis.
HYPOTHESIS_ROWS = {
    "rms_norm": "RMS norm  (Σ_k ‖M_k‖² / L)^½\nrule: its exponent",
    "increment_ratio": "increment ratio\nmax_k ‖M_{k+1} − M_k‖ / max_k ‖M_k‖",
    "quadratic_variation": "quadratic variation\nΣ_k ‖M_{k+1} − M_k‖²",
    "root_sum_squares": "root sum of squares\n(Σ_k ‖M_k‖²)^½",
}


def hypothesis_figure(statistics: pd.DataFrame, exponents: pd.DataFrame, path: str | os.PathLike,
                      include_status=INCLUDE_STATUS) -> None:
    """The hypothesis tests against depth with the primary population's fitted slopes, for the
    effective weights M (and |δ|A for per-layer δ): the three numbers the regime rule reads (the
    exponent of the RMS norm, the slopes of the increment ratio and of the quadratic variation)
    and the root sum of squares of the original study; networks marked by their final status.

    Guides, in the legend: H1 (smooth, dashed) and H2 (diffusive, dotted) with the slopes they
    predict; networks left out of the fits in grey."""
    exps = _experiments(statistics)
    stats = list(HYPOTHESIS_ROWS)
    fig, axes = plt.subplots(len(stats), len(exps), figsize=(3.8 * len(exps), 2.9 * len(stats)), squeeze=False)
    colors = sns.color_palette("deep")
    for j, exp in enumerate(exps):
        part = statistics[statistics["experiment"] == exp]
        delta_type = part["delta"].iloc[0] if "delta" in part and len(part) else "none"
        quantities = ["M"] + (["M_abs"] if delta_type == "multi" else [])
        for i, stat in enumerate(stats):
            ax = axes[i, j]
            handles, guide_handles, statuses = [], [], set()
            for color, q in zip(colors, quantities):
                data = part[(part["quantity"] == q) & (part["statistic"] == stat)]
                if data.empty:
                    continue
                statuses |= _points(ax, data, color, _included(data, include_status))
                fit = _fit_row(exponents, exp, q, stat)
                label = _draw_fit(ax, fit, color, LABELS[q], "β" if stat == "rms_norm" else "",
                                  slope=stat != "rms_norm")
                handles.append(plt.Line2D([], [], color=color, lw=1.4, label=label))
                if q == "M" and fit is not None and np.isfinite(fit["slope"]):
                    beta = _fit_row(exponents, exp, q, "rms_norm")
                    beta = beta["exponent"] if beta is not None else 0.5
                    L0, L1 = fit["min_depth"], fit["max_depth"]
                    y0 = np.exp(fit["intercept"]) * L0 ** fit["slope"]
                    guides = {h: expected_slope(stat, h, beta) for h in ("H1", "H2")}
                    for h, slope in guides.items():
                        _guide(ax, L0, y0, slope, L1, GUIDE_STYLES[h][0])
                    guide_handles = _guide_handles(guides)
            handles += guide_handles + _excluded_handle(part[(part["statistic"] == stat) & part["quantity"].isin(quantities)], include_status)
            ax.set(xlabel="depth L")
            ax.set_ylabel(HYPOTHESIS_ROWS[stat], fontsize=8)
            _log_axes(ax)
            ax.legend(handles=handles + _status_handles(statuses), fontsize=6, loc="best")
            if i == 0:
                _title(ax, part if len(part) else statistics, exp)
    fig.tight_layout()
    save_figure(fig, path)


def paths_figure(paths: pd.DataFrame, path: str | os.PathLike) -> None:
    """Weight entries L^β X_k and L^β‖M_k‖ against k/L for the deepest network (smooth curves or
    Brownian-like clouds), beside the entries of the weight path W^A_L(t) for several depths."""
    exp = paths["experiment"].iloc[0]
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.2))
    entries = paths[paths["series"] == "entry"]
    q = entries["quantity"].iloc[0]
    L = int(entries["depth"].iloc[0])
    sns.scatterplot(data=entries, x="t", y="value", hue="entry", s=5, linewidth=0, ax=axes[0], legend=False)
    beta = entries["beta"].iloc[0]
    axes[0].set(xlabel="t = k/L", ylabel=rf"$L^\beta\, {TEX[q]}$ entries", title=f"{exp}: entries, L = {L}, β = {beta:.2f}")
    norms = paths[paths["series"] == "norm"]
    axes[1].scatter(norms["t"], norms["value"], s=4, lw=0, color="0.2")
    axes[1].set(xlabel="t = k/L", ylabel=r"$L^\beta \|M_k\|$", title="norm of the effective weights M = δA")
    walks = paths[paths["series"] == "path"]
    sns.lineplot(data=walks, x="t", y="value", hue="depth", style="entry", palette="viridis",
                 lw=0.9, ax=axes[2], estimator=None, units=None, sort=False)
    axes[2].set(xlabel="t", ylabel=r"$W^A_L(t)$ entries", title=r"weight paths $W^A_L(t) = \sum_{k<Lt} M_k$")
    axes[2].legend(fontsize=6, ncol=2)
    for ax in axes:
        ax.title.set_fontsize(8)
    fig.tight_layout()
    save_figure(fig, path)


def decomposition_figure(decomposition: pd.DataFrame, losses: pd.DataFrame, path: str | os.PathLike,
                         epsilon: float | None = None) -> None:
    """Trend/noise decomposition of the deepest networks (trained entries as dots, trend part
    as lines; rescaled noise paths), and the training loss of the trend-only weights against
    the trained weights across depths (ε band shaded)."""
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.2))
    q = decomposition["quantity"].iloc[0]
    first = decomposition[decomposition["quantity"] == q]
    deepest = first[first["depth"] == first["depth"].max()]
    colors = dict(zip(deepest["entry"].unique(), sns.color_palette("deep")))
    for entry, data in deepest.groupby("entry", sort=False):
        axes[0].scatter(data["t"], data["weight"], s=3, lw=0, alpha=0.5, color=colors[entry])
        axes[0].plot(data["t"], data["trend"], color=colors[entry], lw=1.5, label=entry)
    beta = deepest["beta"].iloc[0]
    axes[0].set(xlabel="t = k/L", ylabel=rf"$L^\beta\, {TEX[q]}$",
                title=f"trend part, L = {int(deepest['depth'].iloc[0])}, β = {beta:.2f}")
    axes[0].legend(fontsize=6, title="entry", title_fontsize=6)
    sns.lineplot(data=first, x="t", y="noise", hue="entry", style="depth", lw=0.8, ax=axes[1],
                 palette=colors, estimator=None, sort=False)
    axes[1].set(xlabel="t", ylabel=r"$L^{\beta-1/2} \sum_{k<Lt} (X_k - \bar X_k)$", title="noise part (rescaled path)")
    axes[1].legend(fontsize=6, ncol=2)
    long = losses.melt(id_vars=["depth", "seed"], value_vars=["loss_trained", "loss_denoised"],
                       var_name="weights", value_name="loss")
    long["weights"] = long["weights"].map({"loss_trained": "trained", "loss_denoised": "trend only"})
    sns.lineplot(data=long, x="depth", y="loss", hue="weights", estimator="median", errorbar=None,
                 marker="o", ax=axes[2])
    sns.scatterplot(data=long, x="depth", y="loss", hue="weights", s=8, alpha=0.5, legend=False, ax=axes[2])
    if epsilon:
        low = min(epsilon, long["loss"][long["loss"] > 0].min()) * 0.5
        axes[2].axhspan(low, epsilon, color="#cde7f0", alpha=0.6, zorder=0, label=f"loss < ε = {epsilon:g}")
    axes[2].set(xlabel="depth L", ylabel="training loss (MSE)", title="trained vs trend-only weights")
    _log_axes(axes[2])
    axes[2].legend(fontsize=6)
    for ax in axes:
        ax.title.set_fontsize(8)
    fig.suptitle(str(decomposition["experiment"].iloc[0]), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


LOSS_COLORS = {"training set": "C0", "epoch mean (stopping rule)": "C1"}
FLOOR_STYLE = dict(color="#7b3294", lw=1.0, ls="-.")


def loss_figure(training: pd.DataFrame, epsilons: dict[str, float], path: str | os.PathLike,
                floors: dict[str, float] | None = None) -> None:
    """Final training loss against depth per experiment, seeds as points (marker = status),
    median line, the band below the stopping threshold ε shaded, and the affine floor of the
    data (the least loss of any affine map, docs/maths.md §2) where ``floors`` gives it; the
    epoch-mean loss the stopping rule saw is drawn too where it differs (it does under the
    shuffle defect). One legend for all panels, in the grid's free slot or below it."""
    floors = floors or {}
    exps = _experiments(training)
    free_slot = len(exps) % 3 != 0 and len(exps) > 3
    fig, axes = _grid(len(exps) + free_slot)
    present = {"status": set(), "loss": set()}
    for ax, exp in zip(axes, exps):
        part = training[training["experiment"] == exp]
        long = part.melt(id_vars=["depth", "seed", "status"],
                         value_vars=[c for c in ("train_loss", "epoch_loss") if c in part],
                         var_name="loss", value_name="value").dropna(subset=["value"])
        long["loss"] = long["loss"].map({"train_loss": "training set", "epoch_loss": "epoch mean (stopping rule)"})
        if len(long):
            sns.lineplot(data=long, x="depth", y="value", hue="loss", palette=LOSS_COLORS, estimator="median",
                         errorbar=None, ax=ax, lw=1, legend=False)
            sns.scatterplot(data=long, x="depth", y="value", hue="loss", palette=LOSS_COLORS, style="status", s=14,
                            ax=ax, alpha=0.7, markers=STATUS_MARKERS, legend=False,
                            style_order=[k for k in STATUS_MARKERS if k in set(long["status"])])
            present["status"] |= set(long["status"])
            present["loss"] |= set(long["loss"])
        eps, floor = epsilons.get(exp), floors.get(exp)
        title = [exp]
        if eps:
            low = min(eps, long["value"][long["value"] > 0].min()) if len(long) else eps
            low = min(low, floor) if floor and floor > 0 else low
            ax.axhspan(low * 0.5, eps, color="#cde7f0", alpha=0.6, zorder=0)
            ax.axhline(eps, color="0.4", lw=0.7, ls="--")
            title.append(f"ε = {eps:g}")
        if floor and floor > 0:
            ax.axhline(floor, **FLOOR_STYLE)
            title.append(f"affine floor {floor:.2g}")
        ax.set(xlabel="depth L", ylabel="final loss (MSE)")
        _log_axes(ax)
        ax.set_title(title[0] + ("\n" + ", ".join(title[1:]) if len(title) > 1 else ""), fontsize=8)
    handles = [plt.Line2D([], [], color=LOSS_COLORS[k], marker="o", ms=4, lw=1, label=f"{k}: seeds, median line")
               for k in LOSS_COLORS if k in present["loss"]]
    handles += [plt.Line2D([], [], color="0.3", marker=STATUS_MARKERS[k], ls="", ms=4, label=f"status: {k}")
                for k in STATUS_MARKERS if k in present["status"]]
    handles += [plt.Rectangle((0, 0), 1, 1, color="#cde7f0", alpha=0.6, label="below ε: a network there has converged"),
                plt.Line2D([], [], color="0.4", lw=0.7, ls="--", label="ε, the stopping threshold"),
                plt.Line2D([], [], **FLOOR_STYLE, label="affine floor: least loss of any affine map\nof the data (docs/maths.md §2)")]
    if free_slot:
        axes[-1].axis("off")
        axes[-1].legend(handles=handles, loc="center", fontsize=8, frameon=False)
        fig.tight_layout()
    else:
        fig.tight_layout()
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    save_figure(fig, path)
