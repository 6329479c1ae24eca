"""The analysis of mapped networks, through the workflow's own code, and its one-page report.

Statistics (:func:`resnet_scaling.scaling.statistics.experiment_statistics`), exponents with
seed-bootstrap intervals and the regime rule (:func:`resnet_scaling.scaling.exponents.fit_all`), the
figures (:mod:`resnet_scaling.plots.scaling`, :mod:`resnet_scaling.plots.regimes`) and the summary
table of the scorecard (:func:`resnet_scaling.verdict.render.summary_table`) are the ones the
workflow runs (docs/maths.md §3). Outputs in ``out``: ``networks.csv`` (one row per network read),
``statistics.csv``, ``exponents.csv``, ``regimes.csv`` (tidy, the workflow's columns),
``warnings.txt`` (what the input cannot support, one sentence a line), ``figures/`` and
``report.md`` / ``report.html``.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_csv, write_text
from ..plots import regimes as regime_figures
from ..plots import scaling as figures
from ..scaling.exponents import fit_all, population_statuses
from ..verdict.render import html_table, markdown_table, summary_table
from ..scaling.statistics import experiment_statistics
from .maps import AnalyseError, Map, load_map
from .checks import UNTRAINED_CRITERION
from .files import expand_inputs
from .networks import BIAS_QUANTITIES, Network, assemble, layer_norm_function, read_network, untrained

#: Figures of the report, each drawn by the workflow's plotting function of the same name.
FIGURES = {
    "scaling_max_norm": "max norm against depth with the fitted exponent",
    "scaling_hypothesis": "increment ratio and root sum of squares of M against depth: the hypothesis tests",
    "scaling_summary": "the three slopes of the regime rule against its bands",
}


#: A fit on fewer depths than this, or fewer networks at one of its depths than
#: :data:`WARN_MIN_NETWORKS`, is reported with a warning: its exponent and interval rest on little.
WARN_MIN_DEPTHS = 4
WARN_MIN_NETWORKS = 3


def analyse(paths, map_spec, out) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every file, check everything, then compute and write the tables, figures and report.

    ``map_spec`` is a :class:`Map` or the path of a map file. Returns (exponents, regimes);
    ``regimes.attrs`` holds ``depth_note`` and ``warnings`` (sentences, also in the report and
    ``warnings.txt``): what the input cannot support (:func:`input_warnings`, :func:`fit_warnings`).
    """
    out = check_out(out)
    m = map_spec if isinstance(map_spec, Map) else load_map(map_spec)
    files = expand_inputs(paths)
    networks = [read_network(path, m) for path in files]
    experiments = assemble(networks, m)  # every check is done here, before any statistic

    norm = layer_norm_function(m)
    tables = []
    for experiment, ws in experiments.items():
        nets = [n for n in networks if n.experiment == experiment]
        statistics, _ = experiment_statistics(ws, m.window_fraction, labels=nets[0].labels, norm=norm)
        if "b" not in m.tensors:
            statistics = statistics[~statistics["quantity"].isin(BIAS_QUANTITIES)].reset_index(drop=True)
        if m.two_matrix:
            statistics = pd.concat([statistics, *part_statistics(nets, m, norm)], ignore_index=True)
        tables.append(statistics)
    exponents, regimes = fit_all(tables, m.settings, m.thresholds)
    warnings = input_warnings(networks, m) + fit_warnings(pd.concat(tables, ignore_index=True), regimes, m)

    out = Path(out)
    statistics = pd.concat(tables, ignore_index=True)
    write_csv(out / "networks.csv", network_table(networks))
    write_csv(out / "statistics.csv", statistics)
    write_csv(out / "exponents.csv", exponents)
    write_csv(out / "regimes.csv", regimes)
    write_text(out / "warnings.txt", "".join(f"{w}\n" for w in warnings))
    include = m.settings.include_status
    figures.max_norm_figure(statistics, exponents, out / "figures" / "scaling_max_norm.png", include)
    figures.hypothesis_figure(statistics, exponents, out / "figures" / "scaling_hypothesis.png", include)
    regime_figures.summary_figure(regimes, m.thresholds, out / "figures" / "scaling_summary.png")
    write_text(out / "report.md", render_markdown(m, networks, exponents, regimes, warnings))
    write_text(out / "report.html", render_html(m, networks, exponents, regimes, warnings))
    regimes.attrs["depth_note"] = depth_note(networks)
    regimes.attrs["warnings"] = warnings
    return exponents, regimes


def part_statistics(nets: list[Network], m: Map, norm) -> list[pd.DataFrame]:
    """The statistics of W and V of two-matrix blocks on their own, as quantities ``W`` and ``V``
    (the analysis's A is the pair Z = (V, W))."""
    out = []
    for role in ("W", "V"):
        ws = assemble([dataclasses.replace(n, A=n.parts[role]) for n in nets], m)
        for experiment_ws in ws.values():
            table, _ = experiment_statistics(experiment_ws, m.window_fraction, labels=nets[0].labels, norm=norm)
            out.append(table[table["quantity"] == "A"].assign(quantity=role))
    return out


def _files(paths: list[str], shown: int = 3) -> str:
    return ", ".join(paths[:shown]) + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def input_warnings(networks: list[Network], m: Map) -> list[str]:
    """Sentences on what the files cannot support: all-zero or constant networks (each naming its
    file), networks without a training status, and networks whose weights look untrained
    (:func:`resnet_scaling.analyse.checks.initialisation_law`)."""
    out = [w for n in networks for w in n.warnings]
    n_networks = sum(n.A.shape[0] for n in networks)
    if m.status is None:
        out.append(f"No training status: the map has no `status`, so all {n_networks} networks are assumed "
                   "converged and enter the fits; a network that stopped early or diverged would count as well "
                   "(map `status` to an array of converged | stopped | max_epochs | diverged).")
    by_experiment: dict[str, list[tuple[str, str]]] = {}
    totals: dict[str, int] = {}
    for n in networks:
        totals[n.experiment] = totals.get(n.experiment, 0) + n.A.shape[0]
        for law in untrained(n):
            if law is not None:
                by_experiment.setdefault(n.experiment, []).append((n.path, law))
    for experiment, hits in by_experiment.items():
        paths = list(dict.fromkeys(p for p, _ in hits))
        out.append(f"Weights that look untrained: {len(hits)} of the {totals[experiment]} networks of experiment "
                   f"{experiment!r} ({_files(paths)}; e.g. {hits[0][1]}): {UNTRAINED_CRITERION}.")
    return out


def fit_warnings(statistics: pd.DataFrame, regimes: pd.DataFrame, m: Map) -> list[str]:
    """A sentence for every evaluated verdict that rests on fewer than :data:`WARN_MIN_DEPTHS`
    depths or on fewer than :data:`WARN_MIN_NETWORKS` networks at one of the depths of its
    exponent's fit window (networks of its population with finite weights)."""
    out = []
    networks = statistics.drop_duplicates(["experiment", "depth", "seed"])
    for _, r in regimes.iterrows():
        if not math.isfinite(r.get("exponent", math.nan)):
            continue
        mine = networks[(networks["experiment"] == r["experiment"]) & networks["finite"].astype(bool)
                        & networks["status"].isin(population_statuses(str(r["population"])))]
        low, high = m.settings.window(str(r["exponent_statistic"]))
        counts = mine[(mine["depth"] >= low) & (mine["depth"] <= high)].groupby("depth").size()
        where = f"experiment {r['experiment']!r}, {r['population']} networks"
        if int(r["n_depths"]) < WARN_MIN_DEPTHS:
            out.append(f"Few depths: the verdict of {where} rests on {int(r['n_depths'])} depths (fewer than "
                       f"{WARN_MIN_DEPTHS}); its exponents and intervals are fits through so few points.")
        thin = counts[counts < WARN_MIN_NETWORKS]
        if len(thin):
            shown = ", ".join(f"L = {d}: {c}" for d, c in thin.items())
            out.append(f"Few networks per depth: the verdict of {where} has fewer than {WARN_MIN_NETWORKS} networks "
                       f"at {len(thin)} of its {len(counts)} depths ({shown}); its seed-bootstrap interval is "
                       "too narrow to trust.")
    return out


def check_out(out) -> Path:
    """The output folder, refused before any work when it cannot be one: an existing file,
    a file where one of its parent folders should be, or a folder that cannot be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AnalyseError(f"--out: {out} is a file, not a folder; name a folder (it is created if missing)")
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise AnalyseError(f"--out: {existing} is a file, so the folder {out} cannot be created in it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AnalyseError(f"--out: {existing} cannot be written (no permission)")
    return out


def network_table(networks: list[Network]) -> pd.DataFrame:
    """One row per network read: its file, experiment, depth, seed slot, status and block shapes."""
    rows = []
    for n in networks:
        for s in range(n.A.shape[0]):
            rows.append({
                "file": n.path, "experiment": n.experiment, "depth": n.depth,
                "seed": int(n.seeds[s]) if n.seeds is not None else np.nan, "status": n.status[s],
                "blocks": n.A.shape[1], "A_shape": "x".join(map(str, n.A.shape[2:])), "delta": n.delta_type,
            })
    return pd.DataFrame(rows)


def depth_note(networks: list[Network]) -> str:
    """Which L each network has: the number of its mapped blocks, unless the map's ``files``
    pattern takes the depth from the file names and that differs (a torchvision stage of n
    blocks with block 0 left out: L = n, n − 1 blocks mapped)."""
    differ = sorted({(n.depth, n.A.shape[1]) for n in networks if n.depth != n.A.shape[1]})
    if not differ:
        return "L is the number of mapped blocks of each network."
    shown = ", ".join(f"L = {L} with {k} blocks" for L, k in differ[:4]) + (" ..." if len(differ) > 4 else "")
    return (f"L is the depth in the file names, not the number of mapped blocks ({shown}): the statistics are "
            "taken over the mapped blocks and fitted against that L.")


def exponent_rows(exponents: pd.DataFrame) -> list[list[str]]:
    """Per experiment, population and quantity: the exponents of the RMS and max norms with their intervals."""

    def cell(r) -> str:
        if r is None or not math.isfinite(r["exponent"]):
            return "–"
        return f"{r['exponent']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"

    rows = [["experiment", "population", "quantity", "exponent (RMS norm)", "exponent (max norm)", "depths × seeds"]]
    if "population" not in exponents:
        exponents = exponents.assign(population="", primary=True)
    for (experiment, population, quantity), part in exponents.groupby(["experiment", "population", "quantity"],
                                                                      sort=False):
        by_stat = {r["statistic"]: r for _, r in part.iterrows()}
        rms, mx = by_stat.get("rms_norm"), by_stat.get("max_norm")
        size = f"{int(rms['n_depths'])} × {int(rms['n_seeds'])}" if rms is not None else ""
        label = population + (" (primary)" if bool(part["primary"].iloc[0]) and population else "")
        rows.append([experiment, label, quantity, cell(rms), cell(mx), size])
    return rows


def _sections(m: Map, networks: list[Network], exponents: pd.DataFrame, regimes: pd.DataFrame,
              warnings: list[str] = ()):
    """(heading, paragraph, table rows or None, figure or None) of the report, shared by both renderings."""
    n_networks = sum(n.A.shape[0] for n in networks)
    if warnings:
        yield ("Warnings", "What the input cannot support, or supports only weakly.",
               [["warning"], *([w] for w in warnings)], None)
    rule = str(regimes["rule"].iloc[0]) if len(regimes) else ""
    s = m.settings
    window = f"depths ≥ {s.min_depth}" + (f" and ≤ {s.max_depth}" if s.max_depth is not None else "")
    yield ("Regimes and exponents",
           f"{n_networks} networks from {len(networks)} file(s), map {m.source}; norm: {m.norm}. "
           f"Exponent = −(OLS slope of log statistic on log depth) over {window}, with the {s.level:.0%} "
           f"seed-bootstrap interval ({s.resamples} resamples); networks with status "
           f"{', '.join(s.include_status)} enter the fits. Support is the fraction of bootstrap draws that give "
           "the same regime (docs/maths.md §3). " + depth_note(networks) + " Rule: " + rule + ".",
           summary_table(exponents, regimes), None)
    meaning = "A, b, δ as mapped; M = δA and m = δb the effective weights; |δ|A and |δ|b for a per-block δ."
    if m.two_matrix:
        meaning += (" Two-matrix blocks h + δ V σ(W h + b): A is the pair Z_k = (V_k, W_k) side by side, as the "
                    "phase-diagram stage takes it, so M = δZ; W and V are also fitted on their own.")
    if m.branch_scale is not None:
        meaning += (f" δ includes the forward pass's multiplier branch_scale = {m.branch_scale} "
                    "(times the mapped δ, if any).")
    yield ("Exponents of every quantity", meaning, exponent_rows(exponents), None)
    for name, caption in FIGURES.items():
        yield (caption[0].upper() + caption[1:], "", None, f"figures/{name}.png")


def render_markdown(m: Map, networks, exponents, regimes, warnings=()) -> str:
    parts = ["# Scaling exponents of the analysed networks\n"]
    for heading, text, rows, figure in _sections(m, networks, exponents, regimes, warnings):
        parts.append(f"## {heading}\n\n" + (f"{text}\n" if text else ""))
        if rows:
            parts.append(markdown_table(rows) + "\n")
        if figure:
            parts.append(f"![{heading}]({figure})\n")
    return "\n".join(parts)


def render_html(m: Map, networks, exponents, regimes, warnings=()) -> str:
    style = ("<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%}</style>")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>{style}</head><body>"
             "<h1>Scaling exponents of the analysed networks</h1>"]
    for heading, text, rows, figure in _sections(m, networks, exponents, regimes, warnings):
        parts.append(f"<h2>{html.escape(heading)}</h2>" + (f"<p>{html.escape(text)}</p>" if text else ""))
        if rows:
            parts.append(html_table(rows))
        if figure:
            parts.append(f"<img src='{html.escape(figure)}' alt='{html.escape(heading)}'>")
    return "".join(parts) + "</body></html>\n"
