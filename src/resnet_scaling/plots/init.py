"""Figures of networks at initialisation (docs/maths.md §6), one function per figure.

Each function reads the tidy tables of :mod:`resnet_scaling.init_limits` /
:mod:`resnet_scaling.init_limits.kernels` and overlays the theory: the diffusion law and the weak
order of Euler–Maruyama, the exact GBM law, the infinite-width kernel recursions and ODE,
the exact relative-change identity, and the critical line max(H, 1/2).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import pandas as pd
import seaborn as sns

from ..init_limits import WEAK_ORDER
from ..init_limits.kernels import KERNEL_WIDTH_RATE
from ..scaling.exponents import loglog_fit
from . import save_figure, slope_guide

_GUIDE = dict(color="0.35", lw=1.0, ls="--", zorder=0)


def _errorbars(ax, x, y, lo, hi, color, label=None, marker="o", **kw):
    yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
    ax.errorbar(x, y, yerr=yerr, fmt=marker, color=color, ms=4, capsize=2, lw=1, label=label, **kw)


def _log2_axis(ax, axis: str = "x") -> None:
    """Log scale in base 2 with plain integer labels (depth and width grids are powers of 2)."""
    getattr(ax, f"set_{axis}scale")("log", base=2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=2))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def law_convergence_figure(
    w1: pd.DataFrame, quantiles: pd.DataFrame, quantity: str, path: str | os.PathLike
) -> None:
    """W1 distance of a network quantity's law to the diffusion against L, and Q–Q plots.

    ``quantity`` is ``state`` (h_L projected on fixed directions; Q–Q of the first) or
    ``jacobian_norm`` (‖∂h_L/∂h_0‖_F against the first-variation SDE).
    """
    data = w1[w1.quantity == quantity]
    acts = list(dict.fromkeys(data.activation))
    colors = dict(zip(acts, sns.color_palette("deep", len(acts))))
    fig, axes = plt.subplots(1, 1 + len(acts), figsize=(4.2 * (1 + len(acts)), 3.6))
    ax = axes[0]
    for act in acts:
        g = data[data.activation == act].sort_values("depth")
        fit = loglog_fit(g.depth, g.w1)
        _errorbars(ax, g.depth, g.w1, g.ci_low, g.ci_high, colors[act], label=f"{act}: {fit.label()}")
        ax.plot(g.depth, fit.line(g.depth), color=colors[act], lw=1)
    slope_guide(ax, data.depth, data.w1, -WEAK_ORDER, label=f"theory: slope {-WEAK_ORDER:+.0f} (weak order)", **_GUIDE)
    _log2_axis(ax)
    ax.set(yscale="log", xlabel="depth L",
           ylabel="W1 to the diffusion" if quantity == "state" else "W1 to the first-variation SDE",
           title="h_L (sliced)" if quantity == "state" else "‖∂h_L/∂h_0‖_F")
    ax.legend(fontsize=6.5)
    q = quantiles[quantiles.quantity == quantity]
    depths = sorted(q[q.scheme == "network"].depth.unique())
    shown = [depths[0], depths[-1]] if len(depths) > 1 else depths
    for ax, act in zip(axes[1:], acts):
        qa = q[q.activation == act]
        ref = qa[qa.scheme == "reference"].sort_values("level")
        lo, hi = ref.value.min(), ref.value.max()
        ax.plot([lo, hi], [lo, hi], label="diffusion law (y = x)", **_GUIDE)
        for L, marker in zip(shown, ("s", "o")):
            net = qa[(qa.scheme == "network") & (qa.depth == L)].sort_values("level")
            ax.plot(ref.value.to_numpy(), net.value.to_numpy(), marker, ms=2.5, label=f"network L = {L}",
                    color=colors[act], alpha=0.45 if L == shown[0] else 0.95)
        ax.set(xlabel=f"reference quantiles (EM, {int(ref.depth.iloc[0])} steps)",
               ylabel="network quantiles", title=f"Q–Q, {act}")
        ax.legend(fontsize=6.5)
    n = int(data.paths.iloc[0]) if len(data) else 0
    fig.suptitle(f"Convergence in law at initialisation ({n} coupled paths, 95 % bootstrap intervals)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def gbm_figure(moments: pd.DataFrame, density: pd.DataFrame, path: str | os.PathLike) -> None:
    """d = 1 identity network: law of log|Y_1| against geometric Brownian motion."""
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.5))
    ax = axes[0]
    L = int(density.depth.iloc[0])
    ax.fill_between(density.x, density.density_ci_low, density.density_ci_high, color="C0", alpha=0.3,
                    step="mid", label=f"network L = {L} (95 % interval)")
    ax.step(density.x, density.density, where="mid", color="C0", lw=1)
    ax.plot(density.x, density.limit_density, label="GBM limit N(log y0 + μ − σ²/2, σ²)", **_GUIDE)
    ax.set(xlabel="log |Y_1|", ylabel="density", title="law of log |Y_1|")
    ax.legend(fontsize=6.5, loc="upper left")
    for ax, stat in zip(axes[1:], ("mean", "variance")):
        g = moments[moments.statistic == stat].sort_values("depth")
        _errorbars(ax, g.depth, g.estimate, g.ci_low, g.ci_high, "C0", label="Monte Carlo (95 %)")
        ax.plot(g.depth, g.exact, "-", color="C3", lw=1.2, label="exact at L (L·E log|1+W|)")
        ax.plot(g.depth, g.corrected_limit, ":", color="C2", lw=1.2, label="limit + 1/L terms")
        ax.axhline(g.limit.iloc[0], label="GBM limit", **_GUIDE)
        _log2_axis(ax)
        ax.set(xlabel="depth L", ylabel=f"{stat} of log |Y_1|", title=stat)
        ax.legend(fontsize=6.5)
    n = int(moments.paths.iloc[0])
    fig.suptitle(f"Geometric Brownian motion limit (d = 1, φ = identity, {n} paths)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def correlation_figure(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Correlation of the outputs of two inputs against depth, with the infinite-width theory."""
    fig, ax = plt.subplots(figsize=(8.6, 4.2))
    labels = {"scaled": "1/√L-scaled residual", "residual": "unscaled residual", "feedforward": "unscaled feed-forward"}
    groups = list(dict.fromkeys(zip(table.kind, table.activation)))
    colors = dict(zip(groups, sns.color_palette("deep", len(groups))))
    for kind, act in groups:
        g = table[(table.kind == kind) & (table.activation == act)].sort_values("depth")
        c = colors[(kind, act)]
        _errorbars(ax, g.depth, g.correlation, g.ci_low, g.ci_high, c, label=f"{labels[kind]}, {act}")
        ax.plot(g.depth, g.theory, "-", color=c, lw=1, alpha=0.8)
        if kind == "scaled":
            ax.axhline(g.theory_limit.iloc[0], color=c, lw=0.8, ls=":")
    ax.axhline(1.0, color="0.2", lw=0.8)
    ax.axhline(table.input_correlation.iloc[0], color="0.6", lw=0.8, ls="-.", label="input correlation")
    ax.plot([], [], "-", color="0.3", lw=1, label="theory: infinite-width recursion")
    ax.plot([], [], ":", color="0.3", lw=1, label="theory: kernel ODE (L → ∞)")
    _log2_axis(ax)
    ax.set(xlabel="depth L", ylabel="output correlation",
           title=f"Input dependence at initialisation (width {int(table.width.iloc[0])}, "
                 f"{int(table.networks.iloc[0])} networks per point, 95 % t-intervals)")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


def relative_change_figure(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Marion et al.: relative change of h and of the gradient against L, by β and weight type."""
    fig, axes = plt.subplots(1, 2, figsize=(13.5, 4.2), sharey=True)
    betas = sorted(table.beta.unique())
    colors = dict(zip(betas, sns.color_palette("deep", len(betas))))
    titles = {"state": "‖h_L − h_0‖ / ‖h_0‖", "gradient": "‖∂ℓ/∂h_0 − ∂ℓ/∂h_L‖ / ‖∂ℓ/∂h_L‖"}
    finite = table.rms[np.isfinite(table.rms)]
    top = finite.max() * 3 if len(finite) else 10.0
    for ax, quantity in zip(axes, ("state", "gradient")):
        for beta in betas:
            c = colors[beta]
            for weights, marker in (("iid", "o"), ("smooth", "s")):
                g = table[(table.quantity == quantity) & (table.beta == beta) & (table.weights == weights)].sort_values("depth")
                ok = np.isfinite(g.rms)
                _errorbars(ax, g.depth[ok], g.rms[ok], g.ci_low[ok], g.ci_high[ok], c, marker=marker,
                           label=f"β = {beta:g}, {weights}", mfc="none" if weights == "smooth" else c)
                if (~ok).any():
                    ax.scatter(g.depth[~ok], np.full((~ok).sum(), top), marker="^", color=c, s=30)
                    for L, n_exp, n in zip(g.depth[~ok], g.exploded[~ok], g.paths[~ok]):
                        ax.annotate(f"{n_exp}/{n}", (L, top), fontsize=6, ha="center", va="bottom", color=c)
                if weights == "iid":
                    ax.plot(g.depth, g.theory_rms, "-", color=c, lw=1.2)
                elif np.isfinite(g.theory_rms).any():
                    ax.fill_between(g.depth, g.theory_ci_low, g.theory_ci_high, color=c, alpha=0.2, lw=0)
                    ax.plot(g.depth, g.theory_rms, "--", color=c, lw=1)
        ax.axhline(np.sqrt(np.expm1(0.5)), color="0.6", lw=0.7, ls=":")
        _log2_axis(ax)
        ax.set(yscale="log", xlabel="depth L", title=titles[quantity])
    axes[0].set_ylabel("root mean square over paths")
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="0.3", lw=1.2),
                plt.Line2D([], [], color="0.3", lw=1, ls="--"),
                plt.Line2D([], [], color="0.6", lw=0.7, ls=":"),
                plt.Line2D([], [], color="0.3", marker="^", lw=0)]
    labels += ["exact: √((1 + L^{-2β}/2)^L − 1) (i.i.d.)", "ODE limit at β = 1 (smooth, 95 %)",
               "√(e^{1/2} − 1) ≈ 0.81", "exploded (count/paths)"]
    axes[1].legend(handles, labels, fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    n, d = int(table.paths.iloc[0]), int(table.dim.iloc[0])
    fig.suptitle(f"Relative change at initialisation (d = {d}, {n} paths, 95 % bootstrap intervals)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def phase_diagram_figure(cells: pd.DataFrame, line: pd.DataFrame, path: str | os.PathLike) -> None:
    """β × H: median relative change at the largest depth, explosions, and the critical line."""
    L = int(cells.depth.max())
    top = cells[cells.depth == L]
    betas = np.sort(top.beta.unique())
    hursts = np.sort(top.hurst.unique())
    grid = top.pivot(index="hurst", columns="beta", values="median").loc[hursts, betas].to_numpy()
    boom = top.pivot(index="hurst", columns="beta", values="exploded").loc[hursts, betas].to_numpy()
    n_paths = int(top.paths.iloc[0])
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4), gridspec_kw=dict(width_ratios=[1.25, 1]))
    ax = axes[0]
    edges = lambda v: np.concatenate([[v[0] - (v[1] - v[0]) / 2], (v[1:] + v[:-1]) / 2, [v[-1] + (v[-1] - v[-2]) / 2]])
    with np.errstate(divide="ignore"):
        logv = np.log10(grid)
    finite = np.isfinite(logv)
    vmax = np.nanmax(np.abs(logv[finite])) if finite.any() else 1.0
    cmap = sns.color_palette("vlag", as_cmap=True).with_extremes(bad="black")
    mesh = ax.pcolormesh(edges(betas), edges(hursts), np.ma.masked_invalid(logv), cmap=cmap,
                         vmin=-vmax, vmax=vmax, shading="flat")
    fig.colorbar(mesh, ax=ax, label=f"log10 median ‖h_L − h_0‖/‖h_0‖, L = {L}")
    for i, H in enumerate(hursts):
        for j, beta in enumerate(betas):
            if boom[i, j]:
                ax.text(beta, H, str(int(boom[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if not finite[i, j] else "black")
    hs = np.linspace(edges(hursts)[0], edges(hursts)[-1], 100)
    ax.plot(np.maximum(hs, 0.5), hs, color="k", lw=1.5, ls="--", label="theory β_c = max(H, 1/2)")
    ax.errorbar(line.beta_critical, line.hurst,
                xerr=np.vstack([line.beta_critical - line.ci_low, line.ci_high - line.beta_critical]),
                fmt="o", color="gold", mec="k", ms=5, capsize=2, label="estimated β_c (95 %)")
    ax.set(xlabel="β", ylabel="Hurst index H",
           title=f"numbers: exploded paths of {n_paths} (black: median exploded)")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[1]
    slopes = cells[cells.depth == L][["hurst", "beta", "slope"]]
    colors = dict(zip(hursts, sns.color_palette("viridis", len(hursts))))
    for H in hursts:
        g = slopes[slopes.hurst == H].sort_values("beta")
        ok = np.isfinite(g.slope)
        ax.plot(g.beta[ok], g.slope[ok], "o-", color=colors[H], ms=3, lw=1, label=f"H = {H:g}")
        bc = max(H, 0.5)
        b = betas[betas >= bc]
        ax.plot(b, bc - b, ls="--", color=colors[H], lw=0.8)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.plot([], [], "--", color="0.3", lw=0.8, label="theory max(H, 1/2) − β")
    ax.set(xlabel="β", ylabel="slope of log median in log L",
           title=f"growth exponent over L ∈ {{{line.depths.iloc[0]}}} (∞ not drawn)", ylim=(-1.5, 3))
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6.5, ncol=2)
    fig.suptitle("Phase diagram over β × H, fractional-Gaussian-noise weights along depth", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def kernels_figure(errors: pd.DataFrame, trajectory: pd.DataFrame, path: str | os.PathLike) -> None:
    """Doubly infinite limit: kernel error against width, and kernel paths against the ODE."""
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2))
    ax = axes[0]
    data = errors[errors.reference == "ode"]
    for (entry, g), c in zip(data.groupby("entry"), sns.color_palette("deep")):
        g = g.sort_values("width")
        fit = loglog_fit(g.width, g.rms_error)
        _errorbars(ax, g.width, g.rms_error, g.ci_low, g.ci_high, c, label=f"{entry}: {fit.label()}")
        ax.plot(g.width, fit.line(g.width), color=c, lw=1)
        ax.axhline(g.depth_bias.iloc[0], color=c, lw=0.8, ls=":")
    slope_guide(ax, data.width, data.rms_error, KERNEL_WIDTH_RATE, label=f"theory: slope {KERNEL_WIDTH_RATE:+.1f}", **_GUIDE)
    ax.plot([], [], ":", color="0.4", label=f"depth bias |recursion − ODE| at L = {int(data.depth.iloc[0])}")
    _log2_axis(ax)
    ax.set(yscale="log", xlabel="width D", ylabel="RMS |⟨Y_1(x), Y_1(x')⟩/D − k_1(x, x')|",
           title=f"error against width ({int(data.networks.iloc[0])} networks per width, 95 % bootstrap)")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6.5)
    ax = axes[1]
    D = trajectory.width.max()
    tr = trajectory[trajectory.width == D]
    for (entry, g), c in zip(tr.groupby("entry", sort=False), sns.color_palette("deep")):
        g = g.sort_values("t")
        _errorbars(ax, g.t, g.empirical, g.ci_low, g.ci_high, c, label=f"{entry}")
        ax.plot(g.t, g.ode, "-", color=c, lw=1)
        if g.closed_form.notna().any():
            ax.plot(g.t, g.closed_form, "x", color="k", ms=4)
    ax.plot([], [], "-", color="0.3", label="kernel ODE (numerical)")
    ax.plot([], [], "x", color="k", label="ReLU closed form (diagonal)")
    ax.set(xlabel="t = k/L", ylabel="kernel", title=f"kernel paths at width {D} (mean over networks, 95 %)")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6.5, ncol=2)
    fig.suptitle("Doubly infinite limit: empirical kernels against the kernel ODE", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
