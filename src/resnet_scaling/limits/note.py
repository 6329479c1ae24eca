"""The note of the limits stage: solver rates and how close each fitted limit is to its
trained networks, every number read from the rule outputs."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _is_close(row: dict, threshold: float) -> bool:
    """A deterministic limit is close when its outputs are within ``threshold`` (relative)
    of every network's; a stochastic one when, input by input, its mean is within the
    threshold or two standard errors of the networks' mean and its spread within a factor 2
    of theirs; both need a test-loss ratio within a factor 2."""
    ratio = row["test_loss_limit"] / row["test_loss_network"] if row["test_loss_network"] > 0 else float("nan")
    loss_ok = 0.5 < ratio < 2.0
    if row["stochastic"]:
        mean_ok = row["relative_mean_error"] < max(threshold, 2 * row["relative_mean_error_se"])
        spread_ok = not np.isfinite(row["spread_ratio"]) or 0.5 < row["spread_ratio"] < 2.0
        return bool(loss_ok and mean_ok and spread_ok)
    return bool(loss_ok and row["relative_output_error"] < threshold)


def _pct(v: float) -> str:
    """A relative error as a percentage with two significant digits (0.034 % rather than 0.0 %)."""
    return f"{100 * v:.2g} %"


def _solver_lines(convergence_fits) -> list[str]:
    """The solvers' fitted rates on synthetic weights against the predicted ones."""
    lines = ["## Solvers against known rates (synthetic weights, docs/maths.md §4)", "",
             "| case | activation | β | Itô term | slope (RMS) | 95 % interval | expected |", "|---|---|---|---|---|---|---|"]
    for r in convergence_fits[convergence_fits.statistic == "error"].itertuples():
        ito = "" if r.case != "diffusive" else ("with" if str(r.with_ito_term) == "True" else "without")
        lines.append(f"| {r.case} | {r.activation} | {r.beta:g} | {ito} | {r.slope:+.2f} | "
                     f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}] | {r.expected:+.2f} |")
    return lines + [""]


def _pathwise_lines(s: dict) -> list[str]:
    """The pathwise verdict (the limit verdict) and the label of the in-law check below it."""
    if not s.get("pathwise_verdict"):
        return []
    backward = (f" Backward (the adjoint): **{s['pathwise_adjoint_verdict']}** — {s['pathwise_adjoint_reason']}."
                if s.get("pathwise_adjoint_verdict") else "")
    return [f"**Limit verdict (pathwise, on the networks' own paths): {s['pathwise_verdict']}** — "
            f"{s['pathwise_reason']} (population {s['pathwise_population']}; {s.get('pathwise_sensitivity', '')})."
            + backward, "",
            "*Secondary check, in law with fresh noise.* A trained network is one realisation selected by the data: "
            "its drift is fitted to its own layer noise, and fresh noise breaks that coupling, so this comparison "
            "can fail whatever the limit is (docs/maths.md §4). No verdict rests on it."]


def _in_law_line(s: dict, close_threshold: float) -> str:
    """The generative limit against the networks, in law (the secondary check)."""
    ratio = s["test_loss_limit"] / s["test_loss_network"] if s["test_loss_network"] > 0 else float("nan")
    verdict = "close to" if _is_close(s, close_threshold) else "not close to"
    if s["stochastic"]:
        body = (f"mean over draws {_pct(s['relative_mean_error'])} from the networks' mean (standard error "
                f"{_pct(s['relative_mean_error_se'])}), spread {s['limit_spread']:.3g} against {s['network_spread']:.3g} "
                f"across seeds (ratio {s['spread_ratio']:.2f})")
    else:
        body = f"output error {_pct(s['relative_output_error'])} of the size of the output change"
    return (f"In law (secondary check): at depth {s['depth']} the generative limit ({s['variant']}) is {verdict} the "
            f"networks: {body}; Wasserstein-1 {s['output_w1']:.3g}; test loss {s['test_loss_limit']:.3g} against "
            f"{s['test_loss_network']:.3g} (ratio {ratio:.2f}).")


def _mean_field_line(s: dict) -> str:
    """The mean-field ODE of docs/maths.md §4(e) against the networks, per depth with intervals."""
    intervals = s.get("mean_field_relative_error_ci_by_depth") or {}
    counts = s.get("mean_field_networks_by_depth") or {}

    def with_interval(k, v):
        ci = intervals.get(k) or intervals.get(str(k))
        n = counts.get(k) or counts.get(str(k))
        inside = f" [{100 * ci[0]:.2g}, {100 * ci[1]:.2g}] %" if ci and all(map(np.isfinite, ci)) else ""
        return f"L = {k}: {_pct(v)}{inside}" + (f" ({n} networks)" if n else "")

    def by_depth(key, fmt):
        return ", ".join(f"L = {k}: {fmt(v)}" for k, v in s[key].items())

    return ("Mean-field ODE of docs/maths.md §4(e) (each network's window-mean field, integrated without "
            "noise), relative output error against the network with its 95 % network-bootstrap interval: "
            + ", ".join(with_interval(k, v) for k, v in s["mean_field_relative_error_by_depth"].items())
            + "; spread of the networks over seeds: " + by_depth("network_spread_by_depth", lambda v: f"{v:.3g}")
            + "; spread of the fitted diffusion: " + by_depth("diffusion_spread_by_depth", lambda v: f"{v:.3g}")
            + ". Converged networks' spread over seeds is bounded below by their fit, so it is not asked to "
            "shrink; the pathwise verdict above decides the limit.")


def _experiment_lines(s: dict, close_threshold: float) -> list[str]:
    """The note's section of one experiment."""
    by_depth = s.get("networks_by_depth") or {}
    networks = (f" (networks per depth: {', '.join(str(v) for v in by_depth.values())}; population "
                f"{s.get('population', 'all')})" if by_depth else "")
    lines = [f"### {s['experiment']}", "",
             f"Regime from the scaling stage: **{s['regime']}**; fitted limit: **{s['limit']}** "
             f"({s['activation']}, δ {s['delta']}, β used {s['beta']:.2f}); depths {', '.join(map(str, s['depths']))}"
             f"{networks}, {s['n_seeds']} seeds at the deepest.", ""]
    lines += _pathwise_lines(s)
    lines.append(_in_law_line(s, close_threshold))
    if "test_loss_trend_only" in s:
        lines.append(f"With the noise switched off (trend of the weights only) the test loss is {s['test_loss_trend_only']:.3g}.")
    if s["limit"] == "moment_matched":
        lines.append(
            "The moment-matched diffusion is compared in law only (docs/maths.md §4(d)): "
            + ("ReLU is not C² at 0, so neither the ODE nor the Itô SDE of §4(b)–(c) applies; "
               if s["activation"] == "relu" else f"the regime is {s['regime']}, so the fit is descriptive; ")
            + "its window drift also carries the estimation noise of L·δ_k σ(z_k), which fluctuates like √L.")
    if s.get("mean_field_relative_error_by_depth"):
        lines.append(_mean_field_line(s))
    if s.get("pathwise_relative_error"):
        pr = ", ".join(f"N = {k}: {_pct(v)}" for k, v in s["pathwise_relative_error"].items())
        lines.append(f"Pathwise, driven by the network's own weights coarsened to N steps (relative sup error): {pr}. "
                     "At N = L this measures the Taylor remainder of the scheme, not the distance to the limit.")
    agr = s.get("agreement_shallowest", {})
    if agr:
        txt = ", ".join(f"{k} {v:.0%}" for k, v in agr.items())
        lines.append(f"Estimated coefficients of the shallowest fitted depth against the deepest (relative difference): {txt}.")
    return lines + [""]


def limits_note(summaries: Sequence[dict], convergence_fits=None, *, close_threshold: float = 0.1) -> str:
    """A short Markdown note: the pathwise limit verdict of each experiment, and how close each
    fitted limit is to its trained networks in law (a secondary check). Every number is read from
    the summaries (rule outputs)."""
    lines = ["# Fitted limits of the trained networks", ""]
    if convergence_fits is not None and len(convergence_fits):
        lines += _solver_lines(convergence_fits)
    lines += ["## Trained networks", "",
              f"A deterministic limit counts as close when its outputs are within {close_threshold:.0%} (relative to the size "
              "of the change h_L − x) of every network's; a stochastic one when, input by input, its mean is within that "
              "or two standard errors of the networks' mean over seeds and its spread within a factor 2 of theirs; both "
              "also need the test loss within a factor 2.", ""]
    for s in summaries:
        lines += _experiment_lines(s, close_threshold)
    return "\n".join(lines) + "\n"
