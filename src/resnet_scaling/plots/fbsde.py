"""Figures of the backpropagation limit (docs/maths.md §5), one function per figure, reading the
tables written by :mod:`resnet_scaling.fbsde` only.

Fitted slopes come from the slope tables (OLS of log error on log L, 95 % t-interval);
theory slopes are overlaid as grey dashed guides.
"""

from __future__ import annotations

import math
import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..io import read_npz
from ..scaling.tables import read_table
from . import log_ticks, save_figure, slope_guide

QUANTITY_LABELS = {
    "adjoint_sup": "adjoint  sup_k |p_k − P_{k/L}|",
    "grad_A_rms": "∂ℓ/∂A_k, relative RMS over layers",
    "grad_b_rms": "∂ℓ/∂b_k, relative RMS over layers",
    "grad_A_sup": "∂ℓ/∂A_k, relative sup over layers",
    "weight_roughness": "weights M_k",
    "gradient_roughness": "gradients ∂ℓ/∂M_k",
}
#: Error quantities drawn in the convergence figure (the sup-over-layers gradient error of
#: the diffusive case carries a √log L factor and is only tabulated).
CONVERGENCE_QUANTITIES = ("adjoint_sup", "grad_A_rms", "grad_b_rms")


def _grid(n: int, ncols: int, size=(3.8, 3.2)):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _depth_axis(ax, depths) -> None:
    """Log₂ depth axis labelled with the depths themselves."""
    ax.set_xscale("log", base=2)
    ticks = np.unique(np.asarray(depths, dtype=int))
    powers = ticks[(ticks & (ticks - 1)) == 0]
    if len(ticks) > 8 and len(powers) >= 3:
        ticks = powers
    if len(ticks) > 8:
        ticks = ticks[:: math.ceil(len(ticks) / 8)]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()


def _slope_text(row) -> str:
    return f"{row['slope']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"


#: Plain names of the activations and limits in titles.
ACTIVATION_NAMES = {"softplus0": "softplus − log 2", "tanh": "tanh", "relu": "ReLU", "identity": "identity"}
LIMIT_TITLES = {"neural_ode": "neural ODE", "linear_ode": "linear ODE", "diffusive": "diffusive limit (Itô SDE)"}


def _panel_layout(n: int) -> tuple[int, bool]:
    """Columns for ``n`` panels, and whether a key panel fills the grid: no slot stays empty."""
    for ncols in (3, 2):
        if n % ncols == 0:
            return ncols, False
        if (n + 1) % ncols == 0:
            return ncols, True
    return 3, True


def _case_title(first) -> str:
    title = f"{LIMIT_TITLES.get(first['limit'], first['limit'])}, {ACTIVATION_NAMES.get(first['activation'], first['activation'])}"
    if first["limit"] == "linear_ode":
        title += f", β = {first['beta']:g}"
    return f"{title}\n{int(first['n_paths'])} paths"


#: What the marks of the convergence figure mean, one sentence each.
CONVERGENCE_KEY = (
    "adjoint: sup_k |p_k − P(k/L)|, the network's adjoint against the backward limit (docs/maths.md §5)",
    "∂ℓ/∂A_k, ∂ℓ/∂b_k: the per-layer gradients against their limits, relative RMS over layers",
    "points: RMS over paths; line: fitted slope, with its 95 % interval in the legend",
    "grey dashed: the slope docs/maths.md §5 predicts",
    "× dotted: the diffusive case without the ½σ''(0) term (it should not converge: slope 0)",
)


def convergence_figure(errors: pd.DataFrame, slopes: pd.DataFrame, path: str | os.PathLike) -> None:
    """Network-versus-limit errors against depth on synthetic weight paths, one panel per
    case: RMS over paths as points, the fitted line (slope and 95 % interval in the legend)
    and the theoretical slope of docs/maths.md §5 as a grey dashed guide; dotted lines for the
    diffusive case without the σ''(0) term; a key explains the marks (in a panel of its own
    where the grid would otherwise keep an empty slot)."""
    errors = errors[errors["quantity"].isin(CONVERGENCE_QUANTITIES)]
    cases = list(dict.fromkeys(errors["case"]))
    ncols, key_panel = _panel_layout(len(cases))
    fig, axes = _grid(len(cases) + key_panel, ncols, size=(4.6, 4.9))
    colors = dict(zip(CONVERGENCE_QUANTITIES, sns.color_palette("deep")))
    for ax, case in zip(axes, cases):
        part = errors[errors["case"] == case]
        handles = []
        for (quantity, ito), grp in part.groupby(["quantity", "with_ito_term"], sort=False):
            grp = grp.sort_values("L")
            color, ls = colors[quantity], "-" if ito else ":"
            fit = slopes[
                (slopes["case"] == case) & (slopes["quantity"] == quantity)
                & (slopes["with_ito_term"] == ito) & (slopes["statistic"] == "rms")
            ]
            sns.scatterplot(x=grp["L"], y=grp["error"], ax=ax, color=color, marker="o" if ito else "X", s=22, legend=False)
            label = QUANTITY_LABELS[quantity].split(",")[0].split("  ")[0]
            if not ito:
                label += ", no Itô term"
            if not fit.empty:
                row = fit.iloc[0]
                window = grp[grp["L"] >= row["L_min"]]
                slope_guide(ax, window["L"], window["error"], row["slope"], color=color, lw=1.2, ls=ls)
                label += f": {_slope_text(row)}"
                if np.isfinite(row["expected_slope"]):
                    slope_guide(ax, window["L"], window["error"], row["expected_slope"], color="0.5", lw=0.8, ls="--", zorder=0)
                    label += f" (theory {row['expected_slope']:+.2f})"
            handles.append(plt.Line2D([], [], color=color, ls=ls, marker="o" if ito else "X", ms=4, label=label))
        ax.set_title(_case_title(part.iloc[0]), fontsize=9)
        ax.set(yscale="log", xlabel="depth L", ylabel="error (RMS over paths)")
        _depth_axis(ax, part["L"])
        log_ticks(ax, "y")
        ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    fig.tight_layout()
    if key_panel:
        key = axes[-1]
        key.axis("off")
        text = "\n\n".join(textwrap.fill(line, 46) for line in CONVERGENCE_KEY)
        key.text(0.0, 1.0, text, va="top", ha="left", fontsize=8.5, transform=key.transAxes)
        key.set_title("how to read the panels", fontsize=9)
    else:  # below the grid: the figure's tight bounding box keeps it
        fig.text(0.5, 0.0, "\n".join(CONVERGENCE_KEY), ha="center", va="top", fontsize=8)
    save_figure(fig, path)


def adjoint_paths_figure(paths: pd.DataFrame, path: str | os.PathLike, *, row: str, col: str, title: str = "") -> None:
    """Adjoints against t: the network's p_k (dashed) and the limit's P_t (solid), one
    colour per ``label``, panels by ``row`` × ``col`` (columns of ``paths``)."""
    data = paths.copy()
    data["kind"] = np.where(data["source"] == "network", "network p_k", "limit P_t")
    labels = list(dict.fromkeys(data["label"]))
    nets = [lab for lab in labels if lab.startswith("network")]
    lims = [lab for lab in labels if not lab.startswith("network")]
    palette = {**dict(zip(nets, sns.color_palette("deep"))), **dict(zip(lims, ["black", "#c44e52", "#8172b3"]))}
    g = sns.relplot(
        data=data, x="t", y="value", hue="label", style="kind", row=row, col=col, kind="line", palette=palette,
        height=2.2, aspect=1.4, lw=1.0, dashes={"network p_k": (3, 1.5), "limit P_t": ""},
        facet_kws={"sharey": False}, estimator=None,
    )
    g.set_titles("{row_var} {row_name}, {col_var} {col_name}", size=7)
    g.set_axis_labels("t = k/L", "adjoint")
    if title:
        g.figure.suptitle(title, fontsize=9, y=1.01)
    save_figure(g.figure, path)


def gradient_error_figure(table: pd.DataFrame, slopes: pd.DataFrame, path: str | os.PathLike) -> None:
    """Trained networks against their limit systems, against depth: adjoint error and
    relative per-layer gradient error (one colour per limit, solid trained, dashed at
    initialisation; seeds as points, lines through the medians, fitted slopes in the
    legend), and the roughness of the weights M_k and of the gradients ∂ℓ/∂M_k (slope −1:
    smooth in t; −1/2: a continuous Brownian-like path; 0: rough, white-noise-like)."""
    panels = ["adjoint_sup", "grad_A_rms", "roughness"]
    fig, axes = _grid(len(panels), 3, size=(4.2, 4.4))
    limits_ = [k for k in dict.fromkeys(table["limit"]) if k != "network"]
    colors = dict(zip(limits_ + ["weight_roughness", "gradient_roughness"], sns.color_palette("deep")))
    styles = {"trained": "-", "init": "--"}
    for ax, panel in zip(axes, panels):
        handles = []
        if panel == "roughness":
            series = [("network", q, colors[q]) for q in ("weight_roughness", "gradient_roughness")]
            ax.set_title("roughness along depth: RMS increment / RMS norm", fontsize=8)
            ax.set_ylabel("(Σ‖X_{k+1} − X_k‖²)^{1/2} / (Σ‖X_k‖²)^{1/2}")
        else:
            series = [(k, panel, colors[k]) for k in limits_]
            ax.set_title(QUANTITY_LABELS[panel], fontsize=8)
            ax.set_ylabel("error")
        for limit, quantity, color in series:
            for state, ls in styles.items():
                part = table[(table["limit"] == limit) & (table["quantity"] == quantity) & (table["state"] == state)]
                if part.empty:
                    continue
                ax.scatter(part["depth"], part["value"], s=6, color=color, alpha=0.4, lw=0)
                med = part.groupby("depth")["value"].median()
                ax.plot(med.index, med.values, color=color, ls=ls, lw=1.1)
                fit = slopes[(slopes["limit"] == limit) & (slopes["quantity"] == quantity) & (slopes["state"] == state)]
                name = QUANTITY_LABELS[quantity] if panel == "roughness" else limit
                label = f"{name}, {state}"
                if not fit.empty and np.isfinite(fit.iloc[0]["slope"]):
                    label += f": {_slope_text(fit.iloc[0])}"
                handles.append(plt.Line2D([], [], color=color, ls=ls, label=label))
        if panel == "roughness":
            L = np.sort(table["depth"].unique())
            ax.plot(L, L[0] / L, color="0.5", ls="--", lw=0.8, zorder=0)
            handles.append(plt.Line2D([], [], color="0.5", ls="--", lw=0.8, label="slope −1 (smooth in t)"))
        ax.set(yscale="log", xlabel="depth L")
        _depth_axis(ax, table["depth"])
        ax.legend(handles=handles, fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    first = table.iloc[0]
    fig.suptitle(
        f"{first['experiment']}: {first['activation']}, δ {first['delta']}, {first['dataset']}; "
        f"{table['seed'].nunique()} seeds",
        fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, path)


def gradient_field_figure(field: dict[str, np.ndarray], path: str | os.PathLike, *, title: str = "") -> None:
    """Heat maps over (t, entry) of the effective weights M_k, the network's per-layer
    gradient ∂ℓ/∂M_k and the limit's gradient field G(t), one row per state (array names
    ``{state}_weights``, ``{state}_network``, ``{state}_limit``, or unprefixed for one row).
    Network and limit share one symmetric colour scale per row."""
    states = sorted({k.rsplit("_", 1)[0] for k in field if "_" in k}) or [""]
    fig, axes = plt.subplots(len(states), 3, figsize=(11, 2.8 * len(states)), squeeze=False)
    for r, state in enumerate(states):
        key = (lambda name: f"{state}_{name}") if state else (lambda name: name)
        W, G, Gl = (np.asarray(field[key(n)]) for n in ("weights", "network", "limit"))
        L = W.shape[0]
        glim = np.nanmax(np.abs(np.concatenate([G.reshape(L, -1), Gl.reshape(L, -1)]))) or 1.0
        wlim = np.nanmax(np.abs(W)) or 1.0
        for c, (X, lim, name) in enumerate(
            ((W, wlim, "weights M_k = δ_k A_k"), (G, glim, "network ∂ℓ/∂M_k"), (Gl, glim, "limit (s_t ⊙ P_t) H_tᵀ"))
        ):
            ax = axes[r, c]
            im = ax.imshow(
                X.reshape(L, -1).T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                extent=(0.0, 1.0, X.reshape(L, -1).shape[1] - 0.5, -0.5), interpolation="nearest",
            )
            ax.grid(False)
            ax.set_title(f"{state + ': ' if state else ''}{name}", fontsize=8)
            ax.set(xlabel="t = k/L", ylabel="entry (i, j)" if c == 0 else "")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def synthetic_figures(inputs: dict, outputs: dict, case: str) -> None:
    """The three figures of the synthetic study from the files of ``fbsde.write_adjoint_convergence``:
    ``inputs`` errors, slopes, paths (CSV), field (npz); ``outputs`` convergence, paths, field."""
    convergence_figure(read_table(inputs["errors"]), read_table(inputs["slopes"]), outputs["convergence"])
    adjoint_paths_figure(
        read_table(inputs["paths"]), outputs["paths"], row="path", col="coord",
        title=f"{case}: network adjoints and the backward equation on the same weight path",
    )
    gradient_field_figure(read_npz(inputs["field"])[0], outputs["field"], title=f"{case}: deepest network, path 0")


def trained_figures(inputs: dict, outputs: dict, experiment: str) -> None:
    """The three figures of one experiment from the files of ``fbsde.write_trained``:
    ``inputs`` table, slopes, paths (CSV), field (npz); ``outputs`` error, paths, field."""
    gradient_error_figure(read_table(inputs["table"]), read_table(inputs["slopes"]), outputs["error"])
    title = f"{experiment}: deepest network, first included seed"
    adjoint_paths_figure(read_table(inputs["paths"]), outputs["paths"], row="state", col="input", title=title)
    field, meta = read_npz(inputs["field"])
    gradient_field_figure(field, outputs["field"], title=f"{title}; limit {meta.get('limit', '')}")
