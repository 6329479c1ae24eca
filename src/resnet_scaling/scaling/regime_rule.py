"""The regime rule of docs/maths.md §3: which limit the exponents of an experiment read as.

Regime rule on the effective weights M = δA (thresholds in :class:`RegimeThresholds`):
- ODE: increment-ratio slope ≤ −0.5 and exponent of M ≈ 1;
- SDE: increment-ratio slope ≈ 0, exponent of M ≈ 1/2, quadratic-variation slope ≈ 0;
- ODE (rough weights): increment-ratio slope ≈ 0, exponent of M ≈ 1, quadratic-variation
  slope ≈ −1 (the layer noise averages out: the mean-field ODE of docs/maths.md §4(e));
- neither otherwise;
and ``undetermined`` when one of the three slopes cannot be fitted (too few depths), and
``no usable networks`` when every network of the experiment was excluded (diverged, out of
epochs, non-finite): its row says why, and the other experiments are fitted as usual.

The rule reads the fits of :mod:`.exponents` (a point estimate and its bootstrap draws per
statistic): :func:`regime_of` gives the regime with its support and how firm it is
(:func:`threshold_sensitivity`); :func:`depth_gap_cut` says where a population's fits stop
before a gap in its depths.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config import section_settings


#: The regime of an experiment none of whose networks may enter a fit.
NO_USABLE_NETWORKS = "no usable networks"
#: The regime of a population with too few depths for the regime rule's fits.
NOT_EVALUATED = "not evaluated"


#: The schema's defaults of the rule (``scaling.regime``), the defaults of :class:`RegimeThresholds`.
_REGIME = section_settings("scaling", {})["regime"]


@dataclass(frozen=True)
class RegimeThresholds:
    """Thresholds of the regime rule (docs/maths.md §3); ``quantity`` and ``exponent_statistic`` say
    which exponent is compared with 1 (ODE) and 1/2 (SDE). Defaults: the schema's ``scaling.regime``."""

    quantity: str = _REGIME["quantity"]
    exponent_statistic: str = _REGIME["exponent_statistic"]
    ode_increment_ratio_max: float = _REGIME["ode_increment_ratio_max"]
    ode_exponent: float = _REGIME["ode_exponent"]
    ode_exponent_tol: float = _REGIME["ode_exponent_tol"]
    sde_increment_ratio_tol: float = _REGIME["sde_increment_ratio_tol"]
    sde_exponent: float = _REGIME["sde_exponent"]
    sde_exponent_tol: float = _REGIME["sde_exponent_tol"]
    sde_quadratic_variation_tol: float = _REGIME["sde_quadratic_variation_tol"]
    rough_quadratic_variation: float = _REGIME["rough_quadratic_variation"]
    rough_quadratic_variation_tol: float = _REGIME["rough_quadratic_variation_tol"]
    max_ci_width: float = _REGIME["max_ci_width"]
    sensitivity: float = _REGIME["sensitivity"]
    max_depth_gap: float = _REGIME["max_depth_gap"]

    @classmethod
    def from_config(cls, cfg: dict | None) -> "RegimeThresholds":
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown keys in scaling.regime: {unknown}")
        return cls(**cfg)



#: Weights of size 1/L whose increments are as large as the weights: the mean-field ODE of
#: docs/maths.md §4(e).
ROUGH_ODE = "ODE (rough weights)"


def classify(increment_ratio_slope, exponent, quadratic_variation_slope, th: RegimeThresholds) -> np.ndarray:
    """The regime rule of docs/maths.md §3, elementwise: 'ODE', 'SDE', 'ODE (rough weights)' or 'neither'."""
    r = np.asarray(increment_ratio_slope, dtype=float)
    e = np.asarray(exponent, dtype=float)
    q = np.asarray(quadratic_variation_slope, dtype=float)
    ode = (r <= th.ode_increment_ratio_max) & (np.abs(e - th.ode_exponent) <= th.ode_exponent_tol)
    sde = (
        (np.abs(r) <= th.sde_increment_ratio_tol)
        & (np.abs(e - th.sde_exponent) <= th.sde_exponent_tol)
        & (np.abs(q) <= th.sde_quadratic_variation_tol)
    )
    rough = (
        (np.abs(r) <= th.sde_increment_ratio_tol)
        & (np.abs(e - th.ode_exponent) <= th.ode_exponent_tol)
        & (np.abs(q - th.rough_quadratic_variation) <= th.rough_quadratic_variation_tol)
    )
    return np.where(ode, "ODE", np.where(sde, "SDE", np.where(rough, ROUGH_ODE, "neither")))



def regime_of(fits: dict, th: RegimeThresholds) -> dict:
    """The regime from the point estimates, with the evidence and its bootstrap support."""
    need = {
        "exponent": (th.quantity, th.exponent_statistic),
        "increment_ratio": (th.quantity, "increment_ratio"),
        "quadratic_variation": (th.quantity, "quadratic_variation"),
    }
    missing = [f"{q}/{s}" for q, s in need.values() if (q, s) not in fits]
    if missing:
        raise ValueError(f"the regime rule needs the statistics {missing}")
    e, r, q = (fits[need[k]] for k in ("exponent", "increment_ratio", "quadratic_variation"))
    why, sensitivity = "", ""
    if not all(np.isfinite([e.slope, r.slope, q.slope])):
        regime, support = "undetermined", np.nan
    else:
        regime = classify(r.slope, -e.slope, q.slope, th).item()
        per_draw = classify(r.draws, -e.draws, q.draws, th)
        valid = np.isfinite(r.draws) & np.isfinite(e.draws) & np.isfinite(q.draws)
        support = float((per_draw[valid] == regime).mean()) if valid.any() else np.nan
        sensitivity = threshold_sensitivity(r.slope, -e.slope, q.slope, th)
        wide = [name for name, f in (("exponent", e), ("increment-ratio", r), ("quadratic-variation", q))
                if not f.slope_ci_high - f.slope_ci_low <= th.max_ci_width]
        if wide:
            why = (f"the point estimates read {regime}, but the {', '.join(wide)} interval"
                   f"{'s are' if len(wide) > 1 else ' is'} wider than {th.max_ci_width:g}")
            regime = "undetermined"
    return {
        "regime": regime,
        "support": support,
        "undetermined_because": why,
        "sensitivity": sensitivity,
        "quantity": th.quantity,
        "exponent_statistic": th.exponent_statistic,
        "exponent": -e.slope,
        "exponent_ci_low": -e.slope_ci_high,
        "exponent_ci_high": -e.slope_ci_low,
        "increment_ratio_slope": r.slope,
        "increment_ratio_ci_low": r.slope_ci_low,
        "increment_ratio_ci_high": r.slope_ci_high,
        "quadratic_variation_slope": q.slope,
        "quadratic_variation_ci_low": q.slope_ci_low,
        "quadratic_variation_ci_high": q.slope_ci_high,
        "n_depths": e.n_depths,
        "n_seeds": e.n_seeds,
        "rule": rule_text(th),
    }


#: The edges and tolerances of the rule that :func:`threshold_sensitivity` moves.
MOVABLE_THRESHOLDS = ("ode_increment_ratio_max", "ode_exponent_tol", "sde_increment_ratio_tol", "sde_exponent_tol",
                      "sde_quadratic_variation_tol", "rough_quadratic_variation_tol")


def threshold_sensitivity(increment_ratio_slope: float, exponent: float, quadratic_variation_slope: float,
                          th: RegimeThresholds) -> str:
    """The regime of the point estimates when each threshold moves by ± ``th.sensitivity`` in turn:
    'robust …' or the list of the moves that flip it."""
    base = classify(increment_ratio_slope, exponent, quadratic_variation_slope, th).item()
    flips = []
    for name in MOVABLE_THRESHOLDS:
        for sign in (-1, 1):
            value = getattr(th, name) + sign * th.sensitivity
            if name.endswith("_tol") and value < 0:
                continue
            other = classify(increment_ratio_slope, exponent, quadratic_variation_slope,
                             replace(th, **{name: value})).item()
            if other != base:
                flips.append(f"{other} with {name} {value:g}")
    if not flips:
        return f"robust to ±{th.sensitivity:g} on every threshold"
    return "flips: " + "; ".join(flips)


def rule_text(th: RegimeThresholds) -> str:
    """The thresholds of the rule in words, for the evidence column of ``regimes.csv``."""
    e = f"exponent of {th.quantity} ({th.exponent_statistic})"
    return (
        f"ODE: increment-ratio slope <= {th.ode_increment_ratio_max:g} and |{e} - {th.ode_exponent:g}| "
        f"<= {th.ode_exponent_tol:g}; SDE: |increment-ratio slope| <= {th.sde_increment_ratio_tol:g}, "
        f"|{e} - {th.sde_exponent:g}| <= {th.sde_exponent_tol:g}, |quadratic-variation slope| <= "
        f"{th.sde_quadratic_variation_tol:g}; ODE (rough weights): |increment-ratio slope| <= "
        f"{th.sde_increment_ratio_tol:g}, |{e} - {th.ode_exponent:g}| <= {th.ode_exponent_tol:g}, "
        f"|quadratic-variation slope - ({th.rough_quadratic_variation:g})| <= {th.rough_quadratic_variation_tol:g}; "
        "neither otherwise"
    )



def depth_gap_cut(depths, max_gap: float, min_depths: int, label: str = "") -> tuple[int | None, str]:
    """Where a population's depths have a gap wider than the factor ``max_gap`` with fewer than
    ``min_depths`` depths beyond it: the last depth before the first such gap, and a note saying so
    (a verdict is not carried by a few depths across a gap); (None, '') otherwise."""
    d = np.unique(np.asarray(depths, dtype=int))
    for i in range(1, len(d)):
        ratio = d[i] / d[i - 1]
        if ratio > max_gap and len(d) - i < min_depths:
            beyond = len(d) - i
            return int(d[i - 1]), (f"fits stop at L = {d[i - 1]}: beyond a gap to L = {d[i]} (x{ratio:.1f}) only "
                                   f"{beyond} depth{'s' * (beyond != 1)} hold {label + ' ' if label else ''}networks")
    return None, ""
