"""The note of the init_limits stage: every comparison with theory, in numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..scaling.exponents import loglog_fit
from .shallow import WEAK_ORDER


def _slope_fit(x, y) -> dict:
    """The log-log slope of y against x with its 95 % interval, as the note reports it: NaN
    (not fitted) with fewer than three finite positive points."""
    fit = loglog_fit(x, y)
    if fit.n < 3:
        return dict(slope=math.nan, ci_low=math.nan, ci_high=math.nan, points=fit.n)
    return dict(slope=fit.slope, ci_low=fit.ci_low, ci_high=fit.ci_high, points=fit.n)


def _diffusion_rows(diffusion_w1: pd.DataFrame, slope_tolerance: float) -> list[dict]:
    """The slope of W1 against depth per activation and quantity, against the weak order."""
    rows = []
    for (act, quantity), g in diffusion_w1.groupby(["activation", "quantity"], sort=False):
        fit = _slope_fit(g.depth, g.w1)
        rows.append(dict(activation=act, quantity=quantity, theory=-WEAK_ORDER, **fit,
                         agrees=abs(fit["slope"] + WEAK_ORDER) <= slope_tolerance))
    return rows


def _gbm_rows(gbm_moments: pd.DataFrame) -> list[dict]:
    """Each Monte Carlo moment of the geometric Brownian motion against the exact one."""
    return [
        dict(depth=int(r.depth), statistic=r.statistic, estimate=r.estimate, stderr=r.stderr,
             exact=r.exact, z_exact=r.z_exact, corrected_limit=r.corrected_limit,
             z_corrected=r.z_corrected, agrees=abs(r.z_exact) <= 3.0)
        for r in gbm_moments.itertuples()
    ]


def _correlation_rows(correlation: pd.DataFrame) -> list[dict]:
    """Per network kind and activation: how often the theory lies inside the interval, and the
    deepest network's correlation."""
    rows = []
    for (kind, act), g in correlation.groupby(["kind", "activation"], sort=False):
        g = g.sort_values("depth")
        half = (g.ci_high - g.ci_low) / 2
        z = (g.correlation - g.theory) / (half / 1.96)
        last = g.iloc[-1]
        rows.append(dict(
            kind=kind, activation=act, depths=len(g), covered=int(((g.theory >= g.ci_low) & (g.theory <= g.ci_high)).sum()),
            max_abs_z=float(np.abs(z).max()), deepest=int(last.depth), correlation=float(last.correlation),
            ci_low=float(last.ci_low), ci_high=float(last.ci_high), theory=float(last.theory),
            theory_limit=float(last.theory_limit), agrees=bool(np.abs(z).max() <= 3.0),
        ))
    return rows


def _relative_change_rows(relative_change: pd.DataFrame) -> list[dict]:
    """i.i.d. weights against the exact mean square, then smooth weights against the ODE limit
    (or, without one, whether they grow)."""
    rows = []
    iid = relative_change[relative_change.weights == "iid"]
    for (quantity, beta), g in iid.groupby(["quantity", "beta"]):
        z = g.z.to_numpy()
        rows.append(dict(
            quantity=quantity, beta=float(beta), depths=len(g), max_abs_z=float(np.nanmax(np.abs(z))),
            covered=int(((g.theory_rms >= g.ci_low) & (g.theory_rms <= g.ci_high)).sum()),
            deepest=int(g.depth.max()), rms=float(g.rms.iloc[-1]), theory_rms=float(g.theory_rms.iloc[-1]),
            agrees=bool(np.nanmax(np.abs(z)) <= 3.0),
        ))
    smooth = relative_change[(relative_change.weights == "smooth")]
    for (quantity, beta), g in smooth.groupby(["quantity", "beta"]):
        g = g.sort_values("depth")
        last = g.iloc[-1]
        entry = dict(quantity=quantity, beta=float(beta), weights="smooth", deepest=int(last.depth),
                     rms=float(last.rms), exploded=int(g.exploded.sum()),
                     growth_slope=_slope_fit(g.depth, g.rms)["slope"])
        if np.isfinite(last.theory_rms):
            entry.update(theory_rms=float(last.theory_rms),
                         overlap=bool(last.ci_low <= last.theory_ci_high and last.theory_ci_low <= last.ci_high))
            entry["agrees"] = entry["overlap"]
        else:
            entry["agrees"] = bool(entry["exploded"] > 0 or entry["growth_slope"] > 0)  # no finite limit
        rows.append(entry)
    return rows


def _phase_diagram_rows(critical: pd.DataFrame, slope_tolerance: float) -> list[dict]:
    """The estimated critical β per Hurst index against max(H, 1/2)."""
    return [
        dict(hurst=float(r.hurst), beta_critical=float(r.beta_critical), ci_low=float(r.ci_low),
             ci_high=float(r.ci_high), theory=float(r.theory),
             difference=float(r.beta_critical - r.theory),
             agrees=bool(abs(r.beta_critical - r.theory) <= slope_tolerance))
        for r in critical.itertuples()
    ]


def _kernel_width_rows(kernel_errors: pd.DataFrame, slope_tolerance: float) -> list[dict]:
    """The slope in the width of each kernel entry's error against the kernel ODE."""
    rows = []
    errs = kernel_errors[kernel_errors.reference == "ode"]
    for entry, g in errs.groupby("entry"):
        fit = _slope_fit(g.width, g.rms_error)
        rows.append(dict(entry=entry, theory=-0.5, **fit, agrees=abs(fit["slope"] + 0.5) <= slope_tolerance))
    return rows


def _kernel_paths_check(kernel_paths: pd.DataFrame) -> dict:
    """At the largest width: how often the kernel ODE lies inside the empirical kernel's
    interval, and how far the numerical ODE is from the ReLU closed form."""
    top = kernel_paths[kernel_paths.width == kernel_paths.width.max()]
    covered = (top.ode >= top.ci_low) & (top.ode <= top.ci_high)
    diag = top[top.closed_form.notna()]
    return dict(
        width=int(top.width.iloc[0]), points=len(top), covered=int(covered.sum()),
        max_ode_closed_form_gap=float((diag.ode - diag.closed_form).abs().max()) if len(diag) else math.nan,
        agrees=bool(covered.mean() >= 0.85),
    )


def summarise(
    diffusion_w1: pd.DataFrame,
    gbm_moments: pd.DataFrame,
    correlation: pd.DataFrame,
    relative_change: pd.DataFrame,
    critical: pd.DataFrame,
    kernel_errors: pd.DataFrame,
    kernel_paths: pd.DataFrame,
    slope_tolerance: float = 0.15,
) -> dict:
    """Every comparison with theory as numbers (the source of the note and of the report).

    A fitted slope agrees when it lies within ``slope_tolerance`` of the theory (docs/maths.md §7);
    an estimate with an interval agrees when the interval contains the theory.
    """
    out: dict = {"slope_tolerance": slope_tolerance}
    out["diffusion_w1_slopes"] = _diffusion_rows(diffusion_w1, slope_tolerance)
    out["gbm"] = _gbm_rows(gbm_moments)
    out["correlation"] = _correlation_rows(correlation)
    out["relative_change"] = _relative_change_rows(relative_change)
    out["phase_diagram"] = _phase_diagram_rows(critical, slope_tolerance)
    out["kernel_width_slopes"] = _kernel_width_rows(kernel_errors, slope_tolerance)
    out["kernel_paths"] = _kernel_paths_check(kernel_paths)
    flags = [r["agrees"] for key in ("diffusion_w1_slopes", "gbm", "correlation", "relative_change",
                                      "phase_diagram", "kernel_width_slopes") for r in out[key]]
    flags.append(out["kernel_paths"]["agrees"])
    out["checks"], out["checks_agreeing"] = len(flags), int(sum(flags))
    return _plain(out)


def _plain(obj):
    """Python scalars only, with NaN → None and ±∞ → "inf"/"-inf", so the summary is strict JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    return obj


def _fmt(x, spec=".3g") -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return "∞" if x == "inf" else x
    return format(x, spec)


def note_markdown(s: dict) -> str:
    """The note of the init_limits stage: every comparison with theory, in numbers."""
    yes = lambda flag: "yes" if flag else "**no**"
    lines = [
        "# Networks at initialisation: agreement with theory",
        "",
        f"{s['checks_agreeing']} of {s['checks']} comparisons agree (slopes within "
        f"±{s['slope_tolerance']} of theory; estimates within 3 standard errors or their 95 % interval).",
        "",
        "## 1 & 3. Convergence in law to the diffusion (W1 against L, theory slope −1)",
        "",
        "| activation | quantity | fitted slope | 95 % interval | agrees |",
        "|---|---|---|---|---|",
    ]
    for r in s["diffusion_w1_slopes"]:
        lines.append(f"| {r['activation']} | {r['quantity']} | {_fmt(r['slope'], '+.3f')} | "
                     f"[{_fmt(r['ci_low'], '+.3f')}, {_fmt(r['ci_high'], '+.3f')}] | {yes(r['agrees'])} |")
    lines += ["", "## 1. Geometric Brownian motion (d = 1): moments of log|Y_1|", "",
              "| L | statistic | Monte Carlo ± s.e. | exact at L | z | limit + 1/L | z | agrees |",
              "|---|---|---|---|---|---|---|---|"]
    for r in s["gbm"]:
        lines.append(f"| {r['depth']} | {r['statistic']} | {_fmt(r['estimate'], '.4f')} ± {_fmt(r['stderr'], '.4f')} | "
                     f"{_fmt(r['exact'], '.4f')} | {_fmt(r['z_exact'], '+.2f')} | {_fmt(r['corrected_limit'], '.4f')} | "
                     f"{_fmt(r['z_corrected'], '+.2f')} | {yes(r['agrees'])} |")
    lines += ["", "## 2. Output correlation of two inputs against depth", "",
              "| network | activation | theory inside 95 % CI | max abs z | deepest L | correlation [95 %] | theory | agrees |",
              "|---|---|---|---|---|---|---|---|"]
    for r in s["correlation"]:
        lim = f" (L → ∞: {_fmt(r['theory_limit'], '.3f')})" if r["theory_limit"] is not None else ""
        lines.append(f"| {r['kind']} | {r['activation']} | {r['covered']}/{r['depths']} | {_fmt(r['max_abs_z'], '.2f')} | "
                     f"{r['deepest']} | {_fmt(r['correlation'], '.4f')} [{_fmt(r['ci_low'], '.4f')}, {_fmt(r['ci_high'], '.4f')}] | "
                     f"{_fmt(r['theory'], '.4f')}{lim} | {yes(r['agrees'])} |")
    lines += ["", "## 4. Relative change (Marion et al.)", "",
              "i.i.d. weights against the exact identity (1 + L^{-2β}/2)^L − 1 for the mean square:", "",
              "| quantity | β | max abs z (mean square) | exact RMS inside 95 % CI | deepest L: RMS / exact | agrees |",
              "|---|---|---|---|---|---|"]
    for r in s["relative_change"]:
        if r.get("weights") == "smooth":
            continue
        lines.append(f"| {r['quantity']} | {_fmt(r['beta'], 'g')} | {_fmt(r['max_abs_z'], '.2f')} | {r['covered']}/{r['depths']} | "
                     f"{r['deepest']}: {_fmt(r['rms'])} / {_fmt(r['theory_rms'])} | {yes(r['agrees'])} |")
    lines += ["", "Smooth weights (β = 1: ODE limit; β < 1: no finite limit, growth shown):", "",
              "| quantity | β | deepest L | RMS | ODE limit | explosions | growth slope | agrees |",
              "|---|---|---|---|---|---|---|---|"]
    for r in s["relative_change"]:
        if r.get("weights") != "smooth":
            continue
        lines.append(f"| {r['quantity']} | {_fmt(r['beta'], 'g')} | {r['deepest']} | {_fmt(r['rms'])} | "
                     f"{_fmt(r.get('theory_rms'))} | {r['exploded']} | {_fmt(r['growth_slope'], '+.2f')} | "
                     f"{yes(r['agrees'])} |")
    lines += ["", "## 5. Phase diagram: critical β against max(H, 1/2)", "",
              "| H | estimated β_c | 95 % interval | max(H, 1/2) | difference | agrees |", "|---|---|---|---|---|---|"]
    for r in s["phase_diagram"]:
        lines.append(f"| {_fmt(r['hurst'], 'g')} | {_fmt(r['beta_critical'], '.3f')} | [{_fmt(r['ci_low'], '.3f')}, {_fmt(r['ci_high'], '.3f')}] | "
                     f"{_fmt(r['theory'], '.2f')} | {_fmt(r['difference'], '+.3f')} | {yes(r['agrees'])} |")
    lines += ["", "## 6. Doubly infinite limit: kernels against the kernel ODE", "",
              "| entries | fitted slope in D | 95 % interval | theory | agrees |", "|---|---|---|---|---|"]
    for r in s["kernel_width_slopes"]:
        lines.append(f"| {r['entry']} | {_fmt(r['slope'], '+.3f')} | [{_fmt(r['ci_low'], '+.3f')}, {_fmt(r['ci_high'], '+.3f')}] | "
                     f"{_fmt(r['theory'], '+.1f')} | {yes(r['agrees'])} |")
    kp = s["kernel_paths"]
    lines += ["", f"At width {kp['width']} the kernel ODE lies inside the 95 % interval of the mean empirical "
              f"kernel at {kp['covered']} of {kp['points']} (t, entry) points; numerical ODE and ReLU closed form "
              f"differ by at most {_fmt(kp['max_ode_closed_form_gap'], '.1e')} on the diagonal ({yes(kp['agrees'])}).", ""]
    return "\n".join(lines)
