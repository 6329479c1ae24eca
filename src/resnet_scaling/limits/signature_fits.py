"""Slopes of the pathwise signatures against depth and the limit verdict they give
(docs/maths.md §4, "Judging a trained network's limit").

Per experiment and population (the networks a scaling verdict describes):

- the quadratic variation of the hidden state against L: slope 0 under an SDE limit, −1 under
  an ODE limit (any slope whose interval lies below −``flat_tol`` says the layer noise averages
  out: the limit is deterministic);
- the coarsened network's relative error at fixed N against L: a pathwise limit needs it not to
  grow (an interval above ``growth_tol`` rules the limit out); its rate in N at the deepest depth (−1 for an ODE, between −½
  and −1 for an SDE);
- the same for the adjoint, the update (trained − initial) and the initial network.

The verdict: **SDE** (QV flat, coarsening holds), **ODE** (QV vanishes, coarsening holds),
**neither** (the coarsened error grows with L, or QV grows), **undetermined** (an interval too
wide or across an edge) or **not evaluated** (too few depths or networks), each with its reason,
and what it becomes when the thresholds move by ``sensitivity``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.stats as sps

from ..scaling.exponents import SeedGrid, fit_grid
from .signatures import (
    ADJOINT_COARSENING,
    ADJOINT_QV,
    COARSENING,
    HIDDEN_QV,
    INITIAL_QV,
    UPDATE_NORM,
    WEIGHT_NORM,
)

#: Quantities fitted against depth, one slope each (n_blocks 0); the coarsening errors get one per N.
DEPTH_QUANTITIES = (HIDDEN_QV, ADJOINT_QV, INITIAL_QV, UPDATE_NORM, WEIGHT_NORM)
#: Expected slopes against L under each limit (NaN: no prediction).
EXPECTED = {
    HIDDEN_QV: {"ODE": -1.0, "SDE": 0.0},
    ADJOINT_QV: {"ODE": -1.0, "SDE": 0.0},
    COARSENING: {"ODE": 0.0, "SDE": 0.0},
    ADJOINT_COARSENING: {"ODE": 0.0, "SDE": 0.0},
}
RATE_SUFFIX = "_rate_in_blocks"
#: The verdicts a population can get.
VERDICTS = ("ODE", "SDE", "neither", "undetermined", "not evaluated")

SLOPE_COLUMNS = ["experiment", "population", "primary", "quantity", "n_blocks", "against", "slope", "ci_low", "ci_high",
                 "n_depths", "n_networks", "min_depth", "max_depth", "expected_ode", "expected_sde"]
VERDICT_COLUMNS = ["experiment", "population", "primary", "direction", "verdict", "reason", "quadratic_variation_slope",
                   "quadratic_variation_ci_low", "quadratic_variation_ci_high", "coarsening_blocks", "coarsening_slope",
                   "coarsening_ci_low", "coarsening_ci_high", "n_depths", "n_networks", "sensitivity"]


def _schema_default(key: str):
    """A field whose default is the schema's ``limits.pathwise.<key>`` (defaults live only there)."""
    from ..config import section_settings

    return field(default_factory=lambda: section_settings("limits.pathwise")[key])


@dataclass(frozen=True)
class SignatureRule:
    """Thresholds of the pathwise verdict; every default is the schema's ``limits.pathwise``."""

    flat_tol: float = _schema_default("flat_tol")
    growth_tol: float = _schema_default("growth_tol")
    max_ci_width: float = _schema_default("max_ci_width")
    min_depths: int = _schema_default("min_depths")
    min_networks: int = _schema_default("min_networks")
    verdict_blocks: int = _schema_default("verdict_blocks")
    sensitivity: float = _schema_default("sensitivity")

    @classmethod
    def from_config(cls, cfg: dict) -> "SignatureRule":
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})


def _fit_against_depth(table: pd.DataFrame, min_depth: int, resamples: int, seed: int, level: float) -> dict:
    """Seed-bootstrap log-log slope of ``value`` against depth (the scaling stage's fit)."""
    table = table[table["depth"] >= min_depth]
    if table.empty:
        return {"slope": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_depths": 0, "n_networks": 0,
                "min_depth": math.nan, "max_depth": math.nan}
    grid = SeedGrid.build(table[["depth", "seed"]].drop_duplicates(), resamples, seed)
    fit = fit_grid(grid, grid.values(table), (min_depth, math.inf), level)
    usable = table[np.isfinite(table["value"]) & (table["value"] > 0)]
    return {"slope": fit.slope, "ci_low": fit.slope_ci_low, "ci_high": fit.slope_ci_high, "n_depths": fit.n_depths,
            "n_networks": int(len(usable)), "min_depth": fit.min_depth, "max_depth": fit.max_depth}


def _rate_in_blocks(table: pd.DataFrame, level: float) -> dict:
    """At the deepest depth: each network's log-log slope of the coarsening error against N, and the
    mean with its t-interval over the networks."""
    if table.empty:
        return {}
    deepest = int(table["depth"].max())
    at = table[(table["depth"] == deepest) & np.isfinite(table["value"]) & (table["value"] > 0)]
    slopes = []
    for _, net in at.groupby("seed"):
        if net["n_blocks"].nunique() >= 2:
            slopes.append(np.polyfit(np.log(net["n_blocks"].astype(float)), np.log(net["value"]), 1)[0])
    if not slopes:
        return {}
    s = np.asarray(slopes)
    half = sps.t.ppf(0.5 + level / 2, len(s) - 1) * s.std(ddof=1) / math.sqrt(len(s)) if len(s) > 1 else math.nan
    return {"slope": float(s.mean()), "ci_low": float(s.mean() - half), "ci_high": float(s.mean() + half),
            "n_depths": 1, "n_networks": len(s), "min_depth": deepest, "max_depth": deepest}


def signature_slopes(networks: pd.DataFrame, *, min_depth: int, min_layers_per_block: int, resamples: int = 1000,
                     seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Every slope of one population's networks (``networks``: depth, seed, quantity, n_blocks, value;
    one population of one experiment). Coarsening errors at N blocks are fitted over the depths
    with at least ``min_layers_per_block`` layers per block."""
    rows = []
    for quantity in DEPTH_QUANTITIES:
        part = networks[networks["quantity"] == quantity]
        if len(part):
            rows.append({"quantity": quantity, "n_blocks": 0, "against": "depth",
                         **_fit_against_depth(part, min_depth, resamples, seed, level)})
    for quantity in (COARSENING, ADJOINT_COARSENING):
        part = networks[networks["quantity"] == quantity]
        for n, at_n in part.groupby("n_blocks"):
            low = max(min_depth, int(n) * min_layers_per_block)
            rows.append({"quantity": quantity, "n_blocks": int(n), "against": "depth",
                         **_fit_against_depth(at_n, low, resamples, seed, level)})
        rate = _rate_in_blocks(part, level)
        if rate:
            rows.append({"quantity": quantity + RATE_SUFFIX, "n_blocks": 0, "against": "blocks", **rate})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    base = table["quantity"].str.replace(RATE_SUFFIX, "", regex=False)
    table["expected_ode"] = [EXPECTED.get(q, {}).get("ODE", math.nan) if a == "depth" else -1.0
                             for q, a in zip(base, table["against"])]
    table["expected_sde"] = [EXPECTED.get(q, {}).get("SDE", math.nan) if a == "depth" else -0.5
                             for q, a in zip(base, table["against"])]
    return table


def _row(slopes: pd.DataFrame, quantity: str, n_blocks: int = 0) -> pd.Series | None:
    hit = slopes[(slopes["quantity"] == quantity) & (slopes["n_blocks"] == n_blocks) & (slopes["against"] == "depth")]
    return None if hit.empty else hit.iloc[0]


def _coarsening_row(slopes: pd.DataFrame, quantity: str, rule: SignatureRule) -> pd.Series | None:
    """The coarsening fit the verdict uses: N = ``verdict_blocks``, else the largest N with a fit."""
    fits = slopes[(slopes["quantity"] == quantity) & (slopes["against"] == "depth")
                  & (slopes["n_depths"] >= rule.min_depths)]
    if fits.empty:
        return None
    exact = fits[fits["n_blocks"] == rule.verdict_blocks]
    return exact.iloc[0] if len(exact) else fits.sort_values("n_blocks").iloc[-1]


def _decide(qv: pd.Series, coarse: pd.Series, flat_tol: float, growth_tol: float, max_width: float) -> tuple[str, str]:
    """The verdict from the two intervals (see the module docstring) and its reason."""
    lo, hi = float(qv["ci_low"]), float(qv["ci_high"])
    clo, chi = float(coarse["ci_low"]), float(coarse["ci_high"])
    qv_text = f"quadratic-variation slope {float(qv['slope']):+.2f} [{lo:+.2f}, {hi:+.2f}]"
    c_text = (f"coarsened error at N = {int(coarse['n_blocks'])} against L {float(coarse['slope']):+.2f} "
              f"[{clo:+.2f}, {chi:+.2f}]")
    if not all(map(math.isfinite, (lo, hi, clo, chi))):
        return "undetermined", f"an interval could not be computed ({qv_text}; {c_text})"
    if clo > growth_tol:
        return "neither", f"{c_text} grows with depth: no pathwise limit; {qv_text}"
    if lo > flat_tol:
        return "neither", f"{qv_text} grows with depth: no limit; {c_text}"
    if hi - lo > max_width:
        return "undetermined", f"{qv_text} is wider than {max_width:g}"
    if chi - clo > max_width:
        return "undetermined", f"{c_text} is wider than {max_width:g}"
    holds = "does not grow" if chi <= growth_tol else f"shows no growth (its interval reaches {chi:+.2f})"
    if -flat_tol <= lo and hi <= flat_tol:
        return "SDE", f"{qv_text} is flat (within ±{flat_tol:g}) and the {c_text} {holds}"
    if hi < -flat_tol:
        rate = "like 1/L" if lo <= -1 <= hi or abs(float(qv["slope"]) + 1) <= flat_tol else "slower than 1/L"
        return "ODE", (f"{qv_text} vanishes ({rate}): the layer noise averages out, and the {c_text} {holds}")
    return "undetermined", f"{qv_text} crosses an edge of ±{flat_tol:g}"


def signature_verdict(slopes: pd.DataFrame, rule: SignatureRule, direction: str = "forward") -> dict:
    """The pathwise verdict of one population from its slopes (``direction`` forward: the hidden
    state; backward: the adjoint), with its reason and its sensitivity to the thresholds."""
    qv_name, c_name = (HIDDEN_QV, COARSENING) if direction == "forward" else (ADJOINT_QV, ADJOINT_COARSENING)
    qv = _row(slopes, qv_name) if len(slopes) else None
    coarse = _coarsening_row(slopes, c_name, rule) if len(slopes) else None
    out = {"direction": direction, "verdict": "not evaluated", "reason": "", "sensitivity": ""}
    n_depths = int(qv["n_depths"]) if qv is not None else 0
    n_networks = int(qv["n_networks"]) if qv is not None else 0
    out.update(n_depths=n_depths, n_networks=n_networks)
    if qv is None or n_depths < rule.min_depths or n_networks < rule.min_networks:
        out["reason"] = (f"{n_depths} depths and {n_networks} networks in the fit window; a pathwise slope needs at "
                         f"least {rule.min_depths} depths and {rule.min_networks} networks")
        return out
    out.update(quadratic_variation_slope=float(qv["slope"]), quadratic_variation_ci_low=float(qv["ci_low"]),
               quadratic_variation_ci_high=float(qv["ci_high"]))
    if coarse is None:
        out["reason"] = f"no coarsening fit over at least {rule.min_depths} depths"
        return out
    out.update(coarsening_blocks=int(coarse["n_blocks"]), coarsening_slope=float(coarse["slope"]),
               coarsening_ci_low=float(coarse["ci_low"]), coarsening_ci_high=float(coarse["ci_high"]))
    out["verdict"], out["reason"] = _decide(qv, coarse, rule.flat_tol, rule.growth_tol, rule.max_ci_width)
    flips = []
    for name in ("flat_tol", "growth_tol"):
        for sign in (-1, 1):
            moved = {"flat_tol": rule.flat_tol, "growth_tol": rule.growth_tol, name: getattr(rule, name) + sign * rule.sensitivity}
            other, _ = _decide(qv, coarse, moved["flat_tol"], moved["growth_tol"], rule.max_ci_width)
            if other != out["verdict"]:
                flips.append(f"{other} with {name} {moved[name]:g}")
    out["sensitivity"] = ("robust to ±" + f"{rule.sensitivity:g} on flat_tol and growth_tol") if not flips else \
        "flips: " + "; ".join(flips)
    return out


def population_networks(networks: pd.DataFrame, statuses) -> pd.DataFrame:
    """The rows of the networks whose status is in ``statuses``."""
    return networks[networks["status"].isin(list(statuses))]
