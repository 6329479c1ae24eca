"""The scorecard in Markdown and HTML, with the public table helpers (:func:`markdown_table`,
:func:`html_table`) every report of the package draws its tables with."""

from __future__ import annotations

import html
import math

import pandas as pd

from .references import NOT_RUN, REFERENCES
from .score import NON_AFFINE_THRESHOLD, OUTCOME_STATUSES, flag_set, interval_text, population_words


def summary_table(exponents: pd.DataFrame, regimes: pd.DataFrame) -> list[list[str]]:
    """Per experiment and population: regime with support and the key exponents with their 95 %
    intervals; the population column says which networks and whether it gives the verdict."""

    def quote(experiment: str, quantity: str, statistic: str, sign: float = 1.0, population=None) -> str:
        hit = exponents[
            (exponents["experiment"] == experiment)
            & (exponents["quantity"] == quantity)
            & (exponents["statistic"] == statistic)
        ]
        if population is not None and "population" in hit:
            hit = hit[hit["population"] == population]
        if hit.empty or not math.isfinite(float(hit.iloc[0]["exponent"])):
            return "–"
        r = hit.iloc[0]
        if sign > 0:
            return f"{r['exponent']:.2f} {interval_text(r['ci_low'], r['ci_high'])}"
        return f"{r['slope']:+.2f} {interval_text(r['slope_ci_low'], r['slope_ci_high'])}"

    header = [
        "experiment", "dataset", "σ", "δ", "population", "regime (support)", "M: exponent (rms)",
        "M: exponent (max)", "A: exponent (max)", "δ: exponent (max)",
        "M: increment-ratio slope", "M: quadratic-variation slope", "depths × seeds", "excluded",
    ]
    body = []
    for _, reg in regimes.iterrows():
        e = reg["experiment"]
        support = reg.get("support", math.nan)
        pop = reg.get("population") if isinstance(reg.get("population"), str) else None
        roles = [word for flag, word in (("primary", "primary"), ("original_rule", "original rule"))
                 if flag_set(reg.get(flag, False))]
        body.append([
            e, str(reg["dataset"]), str(reg["activation"]), str(reg["delta"]),
            (population_words(reg) + (f", {' and '.join(roles)}" if roles else "")) if pop else "all included",
            f"{reg['regime']} ({support:.0%})" if math.isfinite(support) else str(reg["regime"]),
            quote(e, "M", "rms_norm", 1, pop), quote(e, "M", "max_norm", 1, pop), quote(e, "A", "max_norm", 1, pop),
            quote(e, "delta", "max_norm", 1, pop), quote(e, "M", "increment_ratio", -1, pop),
            quote(e, "M", "quadratic_variation", -1, pop),
            f"{reg['n_depths']} × {reg['n_seeds']}",
            excluded if isinstance(excluded := reg.get("excluded"), str) and excluded else "none",
        ])
    return [header, *body]


def markdown_table(rows: list[list[str]]) -> str:
    """A Markdown table: the first row is the header; '|' in a cell is escaped."""
    cell = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def html_table(rows: list[list[str]]) -> str:
    """An HTML table: the first row is the header; every cell is escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows[1:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def inclusion_rows(scores: pd.DataFrame, robustness: pd.DataFrame | None) -> list[list[str]] | None:
    """Per exponent row of the scorecard: its exponent under each inclusion rule of the
    robustness table (converged only; + stopped on the plateau; + out of epochs)."""
    if robustness is None or robustness.empty:
        return None
    refs = {r.key: r for r in REFERENCES}
    part = robustness[robustness["analysis"] == "inclusion"]
    variants = list(dict.fromkeys(part["variant"]))
    rows = [["reference", "experiment", *variants]]
    for _, r in scores.iterrows():
        ref = refs[r["reference"]]
        if ref.regime:
            continue
        hit = part[(part["experiment"] == r["experiment"]) & (part["quantity"] == ref.quantity)
                   & (part["statistic"] == ref.statistic)].set_index("variant")
        cells = []
        for v in variants:
            if v in hit.index and math.isfinite(hit.loc[v, "exponent"]):
                h = hit.loc[v]
                cells.append(f"{h['exponent']:.2f} {interval_text(h['ci_low'], h['ci_high'])} ({int(h['n_networks'])} nets)")
            else:
                cells.append("no network")
        rows.append([r["description"], r["experiment"], *cells])
    return rows if len(rows) > 1 else None


def _percent(v: float) -> str:
    return f"{100 * v:.2g} %"


def _outcome_rows(outcome: pd.DataFrame, threshold: float = NON_AFFINE_THRESHOLD) -> list[list[str]]:
    rows = [["experiment", "networks", *(heading for _, heading in OUTCOME_STATUSES), "ε",
             "affine floor of the training data", "reading", "what the exponents describe"]]
    for _, r in outcome.iterrows():
        cells = []
        for status, _ in OUTCOME_STATUSES:
            n, loss = int(r[f"n_{status}"]), r[f"median_loss_{status}"]
            share = r.get(f"median_non_affine_{status}", math.nan)
            words = [f"median loss {loss:.2g}"] if n and math.isfinite(loss) else []
            words += [f"non-affine {_percent(share)}"] if n and math.isfinite(share) else []
            cells.append(f"{n} ({', '.join(words)})" if words else str(n))
        floor, eps, stopped = r["affine_floor"], r["epsilon"], r["median_loss_stopped"]
        if floor > eps:
            reading = "ε is below the affine floor: only a network that uses its nonlinearity converges"
            if r["n_stopped"] and math.isfinite(stopped):
                reading += (f"; the plateau losses are {stopped / floor:.2f} × the floor"
                            + (" (the stopped networks use their nonlinearity)" if stopped < floor
                               else " (the stopped networks act nearly affinely)"))
        else:
            reading = "ε is above the affine floor: a near-affine network can converge"
        median, largest = r.get("population_non_affine_median", math.nan), r.get("population_non_affine_max", math.nan)
        if isinstance(r.get("population"), str) and r["population"] and math.isfinite(median):
            shares = f"median non-affine share {_percent(median)}, at most {_percent(largest)}"
            describes = (f"{r['population']} networks that use their nonlinearity ({shares})" if median >= threshold
                         else f"{r['population']} networks that act nearly affinely ({shares}, below "
                              f"{_percent(threshold)}): the exponents describe a near-affine map")
        else:
            describes = "not measured"
        rows.append([r["experiment"], str(int(r["networks"])), *cells, f"{eps:.2g}", f"{floor:.2g}", reading,
                     describes])
    return rows


def _sections(scores: pd.DataFrame, exponents: pd.DataFrame, regimes: pd.DataFrame, rule: str,
              include_status: tuple = (), robustness: pd.DataFrame | None = None,
              outcome: pd.DataFrame | None = None, non_affine_threshold: float = NON_AFFINE_THRESHOLD):
    """The scorecard as (heading, paragraph, table rows) triples, shared by both renderings."""
    score_rows = [["reference", "kind", "experiment", "data", "reference value", "population", "ours",
                   "95 % interval / support", "local exponent over the depth windows", "verdict",
                   "original rule" + (f" ({', '.join(include_status)})" if include_status else ""), "provenance"]]
    for _, r in scores.iterrows():
        score_rows.append([
            r["description"], r["kind"], r["experiment"], r["data"], r["reference_value"], r["population"], r["ours"],
            r["interval"], r["windows"], r["verdict"], r["original_rule"], r["provenance"],
        ])
    n_agree = int(scores["agree"].sum()) if len(scores) else 0
    n_unevaluated = int(scores["verdict"].str.startswith("not evaluated").sum()) if len(scores) else 0
    yield (
        "Scorecard: our exponents against the reference values",
        f"{n_agree} of {len(scores)} rows agree or are consistent ({n_unevaluated} not evaluated). "
        "Kinds: a measurement the paper reports; a plotting constant (the factor= of an assumed "
        "L^f rescaling written into the released plotting code, not a fitted value); a figure "
        "reading; a claim of the paper's text, tested under the training choice its row names. An exponent row is consistent when the reference value lies in our 95 % "
        "seed-bootstrap interval widened by 0.05 (the references are rounded to one decimal); "
        "a regime row when the regimes are equal. One verdict per population: where the networks split into "
        "those that converged (loss below ε) and those stopped on the plateau, the verdict is the converged "
        "networks' (where they cover enough depths) and the original study's inclusion rule is shown beside it; "
        "the population column says which networks each number describes. Beside each interval, the range of the "
        "local exponent over the sliding windows of consecutive depths inside the fit (for a regime, the regime "
        "the rule gives in each window); a verdict that some window would change says so."
        + (f" The original rule admits the statuses {', '.join(include_status)}; the exponents under the other "
           "inclusion rules follow." if include_status else ""),
        score_rows if len(scores) else None,
    )
    rows = inclusion_rows(scores, robustness)
    if rows:
        yield (
            "The exponents of the scorecard under each inclusion rule",
            "The same fit over the networks that converged (loss below ε) only, with those stopped on the "
            "plateau added, and with those that ran out of epochs added (results/scaling_robustness.csv).",
            rows,
        )
    if outcome is not None and len(outcome):
        yield (
            "How the training ended",
            "Networks per final status with the median final training loss (mean squared error over the "
            "training set) and the median non-affine share of their output on the test inputs (the output "
            "minus its least-squares affine fit on the inputs, relative to the output), beside the stopping "
            "rule's ε and the affine floor: the least loss of any affine map from inputs to targets, near or "
            "above which a network whose blocks stay in the linear range of their activation stays "
            "(docs/maths.md §2). The last column says whether the networks of the primary verdict use their "
            f"nonlinearity (a non-affine share of at least {_percent(non_affine_threshold)}) or act nearly affinely.",
            _outcome_rows(outcome, non_affine_threshold),
        )
    yield (
        "Regimes and exponents of every experiment",
        "Exponent = −(OLS slope of log statistic on log depth), with the 95 % seed-bootstrap "
        "interval; slopes are quoted for the increment ratio and quadratic variation. Support "
        "is the fraction of bootstrap draws that give the same regime. Rule: " + rule + ".",
        summary_table(exponents, regimes),
    )
    yield (
        "Reference values not reproduced here",
        "The convolutional (CIFAR-10) experiment has a stage of its own: with conv_experiments in the config "
        "it is trained and scored in results/cifar/scorecard.md.",
        [["reference", "value", "provenance"], *[list(r) for r in NOT_RUN]],
    )


def render_markdown(scores: pd.DataFrame, exponents: pd.DataFrame, regimes: pd.DataFrame,
                    include_status: tuple = (), robustness: pd.DataFrame | None = None,
                    outcome: pd.DataFrame | None = None,
                    non_affine_threshold: float = NON_AFFINE_THRESHOLD) -> str:
    """The scorecard in Markdown."""
    rule = str(regimes["rule"].iloc[0]) if len(regimes) else ""
    parts = []
    for heading, text, rows in _sections(scores, exponents, regimes, rule, include_status, robustness, outcome,
                                               non_affine_threshold):
        parts.append(f"## {heading}\n\n{text}\n")
        if rows:
            parts.append(markdown_table(rows) + "\n")
    return "# Scaling exponents\n\n" + "\n".join(parts)


def render_html(scores: pd.DataFrame, exponents: pd.DataFrame, regimes: pd.DataFrame,
                include_status: tuple = (), robustness: pd.DataFrame | None = None,
                outcome: pd.DataFrame | None = None,
                non_affine_threshold: float = NON_AFFINE_THRESHOLD) -> str:
    rule = str(regimes["rule"].iloc[0]) if len(regimes) else ""
    style = (
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}</style>"
    )
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>{style}</head><body><h1>Scaling exponents</h1>"]
    for heading, text, rows in _sections(scores, exponents, regimes, rule, include_status, robustness, outcome,
                                               non_affine_threshold):
        parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>")
        if rows:
            parts.append(html_table(rows))
    return "".join(parts) + "</body></html>\n"
