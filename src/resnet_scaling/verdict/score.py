"""Our exponents and regimes scored against the reference values (:mod:`.references`).

A row is evaluated only when the experiment has usable networks; otherwise its verdict says
why it is not. An exponent row is consistent when the reference lies in our 95 % interval
widened by the rounding half-width (0.05); a regime row when the regimes are equal. Beside
the scores, how the training of each experiment ended (:func:`training_outcome`).
"""

from __future__ import annotations

import math

import pandas as pd

from ..config import section_settings
from ..scaling.regime_rule import NO_USABLE_NETWORKS, NOT_EVALUATED, ROUGH_ODE, RegimeThresholds, classify
from .references import DATA_WORDS, REFERENCES, STAND_IN, VERDICT_WORDS, Reference


def interval_text(low: float, high: float) -> str:
    """A 95 % interval as the tables quote it, 'n/a' when an end is not finite."""
    return f"[{low:.2f}, {high:.2f}]" if math.isfinite(low) and math.isfinite(high) else "n/a"


def flag_set(value) -> bool:
    """Whether a table cell holds a set flag (True, 'true', 1)."""
    return str(value).strip().lower() in ("true", "1")


def _populations(regimes: pd.DataFrame, experiment: str) -> tuple[pd.Series, pd.Series]:
    """The primary and the original rule's population rows of an experiment (the same row when
    they are one population, or when the table has no populations)."""
    rows = regimes[regimes["experiment"] == experiment]
    if "primary" not in rows:
        return rows.iloc[0], rows.iloc[0]
    primary = rows[rows["primary"].map(flag_set)].iloc[0]
    original = rows[rows["original_rule"].map(flag_set)] if "original_rule" in rows else rows.iloc[:0]
    return primary, (original.iloc[0] if len(original) else primary)


def population_words(reg: pd.Series) -> str:
    """Which networks a number describes: 'converged (190 converged)', 'converged+stopped
    (190 converged, 162 stopped)'; '' for a table without populations."""
    if "population" not in reg or not isinstance(reg.get("population"), str):
        return ""
    members = reg.get("members")
    counts = ", ".join(f"{n} {s}" for s, n in (m.split(":") for m in str(members).split("; ") if ":" in m))
    return f"{reg['population']} ({counts or 'no network'})"


def _same_networks(a: pd.Series, b: pd.Series) -> bool:
    return a.get("population") == b.get("population")


def _window_rows(robustness: pd.DataFrame | None, reg: pd.Series, quantity: str, statistic: str) -> pd.DataFrame:
    """The sliding-window fits of one population's quantity and statistic (a table without
    populations holds the original rule's windows)."""
    if robustness is None or robustness.empty:
        return pd.DataFrame()
    part = robustness[(robustness["experiment"] == reg["experiment"]) & (robustness["analysis"] == "window")
                      & (robustness["quantity"] == quantity) & (robustness["statistic"] == statistic)]
    if "population" in robustness:
        part = part[part["population"] == reg.get("population")]
    elif not flag_set(reg.get("original_rule", True)):
        return pd.DataFrame()
    return part[part["exponent"].notna()].sort_values("depth_centre")


def _exponent_windows(robustness, reg, ref: Reference, rounding: float, agree: bool) -> tuple[str, str]:
    """The range of the local exponent over the sliding windows, and what the verdict says
    about them when the verdict depends on the window."""
    local = _window_rows(robustness, reg, ref.quantity, ref.statistic)
    if local.empty:
        return "n/a (no window fits)", ""
    text = (f"{local['exponent'].min():.2f}–{local['exponent'].max():.2f} over {len(local)} windows "
            f"(depths {local['variant'].iloc[0].removeprefix('depths ')} … {local['variant'].iloc[-1].removeprefix('depths ')})")
    inside = ((local["ci_low"] - rounding <= ref.value) & (ref.value <= local["ci_high"] + rounding)).to_numpy()
    if inside.all() == inside.any() and bool(inside.any()) == agree:
        return text, ""
    words = VERDICT_WORDS[ref.kind][0]
    return text, f"; depends on the window: {words} in {int(inside.sum())} of {len(inside)} windows"


def _regime_windows(robustness, reg, ref: Reference, thresholds: RegimeThresholds) -> tuple[str, str]:
    """The regime the rule gives in each sliding window, and whether the verdict depends on it."""
    th = thresholds
    parts = [_window_rows(robustness, reg, th.quantity, s).set_index("variant")["exponent"]
             if not _window_rows(robustness, reg, th.quantity, s).empty else pd.Series(dtype=float)
             for s in (th.exponent_statistic, "increment_ratio", "quadratic_variation")]
    variants = [v for v in parts[0].index if all(v in p.index for p in parts[1:])]
    if not variants:
        return "n/a (no window fits of the regime statistics)", ""
    # the robustness table stores exponents = −slope; the rule reads the two slopes as slopes
    found = classify(-parts[1][variants].to_numpy(), parts[0][variants].to_numpy(), -parts[2][variants].to_numpy(), th)
    counts = pd.Series(found).value_counts()
    text = ", ".join(f"{name} in {n}" for name, n in counts.items()) + f" of {len(found)} windows"
    agree_by_window = found == ref.regime
    if agree_by_window.all() == agree_by_window.any() and bool(agree_by_window.any()) == (reg["regime"] == ref.regime):
        return text, ""
    return text, f"; depends on the window: {ref.regime} in {int(agree_by_window.sum())} of {len(found)} windows"


#: The value of a regime row whose slopes read as the ODE with rough weights while the pathwise test finds no limit.
ROUGH_WITHOUT_PATHWISE_LIMIT = "rough weights of size 1/L, no pathwise limit"


def _pathwise_evidence(reg: pd.Series, pathwise: pd.DataFrame | None) -> tuple[str, str] | None:
    """What the pathwise tests of the limits stage say about the population of a regime row
    (docs/maths.md §4: a trained network's limit is judged on its own path): (verdict, words) for
    the forward verdict of the same networks, None without one."""
    if pathwise is None or pathwise.empty:
        return None
    rows = pathwise[(pathwise["experiment"] == reg["experiment"]) & (pathwise["direction"] == "forward")]
    if "population" in reg and isinstance(reg.get("population"), str):
        rows = rows[rows["population"] == reg["population"]]
    if rows.empty:
        return None
    r = rows.iloc[0]
    return str(r["verdict"]), f"; pathwise limit test of the same networks: {r['verdict']} ({r['reason']})"


def _evaluate(ref: Reference, reg: pd.Series, exponents: pd.DataFrame, robustness, rounding: float,
              thresholds: RegimeThresholds, pathwise: pd.DataFrame | None = None) -> dict:
    """Our value, its interval, the window range and the verdict of one population against a reference."""
    reason = reg.get("note") if reg["regime"] == NO_USABLE_NETWORKS else reg.get("population_note")
    unevaluated = {"ours": "n/a", "interval": "n/a", "windows": "n/a", "agree": False,
                   "verdict": f"not evaluated: {reason or reg['regime']}"}
    if reg["regime"] == NO_USABLE_NETWORKS or (ref.regime and reg["regime"] == NOT_EVALUATED):
        return unevaluated
    if ref.regime:
        ours = str(reg["regime"])
        support = reg.get("support", math.nan)
        agree = ours == ref.regime
        windows, depends = _regime_windows(robustness, reg, ref, thresholds)
        # a claim row quotes its evidence either way; a reading only where it differs
        cause = REGIME_CAUSES.get(ours, "") * (not agree) + _regime_measurements(reg) * (not agree or ref.kind == "claim")
        why = reg.get("undetermined_because")
        if ours == "undetermined" and isinstance(why, str) and why:
            cause = f": {why}"
        flips = reg.get("sensitivity")
        if isinstance(flips, str) and flips.startswith("flips"):
            cause += f"; the rule's verdict {flips} (each threshold moved by ±{thresholds.sensitivity:g})"
        evidence = _pathwise_evidence(reg, pathwise)
        if evidence is not None:
            verdict, words = evidence
            if ours == ROUGH_ODE and verdict == "neither":
                ours, agree = ROUGH_WITHOUT_PATHWISE_LIMIT, ROUGH_WITHOUT_PATHWISE_LIMIT == ref.regime
                cause = _regime_measurements(reg) * (not agree or ref.kind == "claim")
            cause += words
        return {"ours": ours, "interval": f"support {support:.0%}" if math.isfinite(support) else "n/a",
                "windows": windows, "agree": agree, "verdict": _verdict(ref.kind, agree) + cause + depends}
    hit = exponents[(exponents["experiment"] == reg["experiment"]) & (exponents["quantity"] == ref.quantity)
                    & (exponents["statistic"] == ref.statistic)]
    if "population" in exponents and "population" in reg:
        hit = hit[hit["population"] == reg["population"]]
    if hit.empty or not math.isfinite(float(hit.iloc[0]["exponent"])):
        if reg["regime"] == NOT_EVALUATED:  # a population without enough depths has no numbers
            return unevaluated
        return {"ours": "n/a", "interval": "n/a", "windows": "n/a", "agree": False, "verdict": "not evaluated: no fit"}
    ours, low, high = (float(hit.iloc[0][c]) for c in ("exponent", "ci_low", "ci_high"))
    agree = math.isfinite(low) and math.isfinite(high) and low - rounding <= ref.value <= high + rounding
    windows, depends = _exponent_windows(robustness, reg, ref, rounding, bool(agree))
    if not high - low <= thresholds.max_ci_width:  # too wide to say anything, either way
        return {"ours": f"{ours:.2f}", "interval": interval_text(low, high), "windows": windows, "agree": False,
                "verdict": f"undetermined: the interval is wider than {thresholds.max_ci_width:g}" + depends}
    return {"ours": f"{ours:.2f}", "interval": interval_text(low, high), "windows": windows, "agree": bool(agree),
            "verdict": _verdict(ref.kind, bool(agree)) + depends}


def _beside(evaluation: dict) -> str:
    """One cell: a population's value, interval and verdict."""
    if evaluation["ours"] == "n/a":
        return evaluation["verdict"]
    return f"{evaluation['ours']} {evaluation['interval']}: {evaluation['verdict']}"


def score(exponents: pd.DataFrame, regimes: pd.DataFrame, rounding: float = 0.05,
          robustness: pd.DataFrame | None = None, references: tuple[Reference, ...] = REFERENCES,
          thresholds: RegimeThresholds | None = None, pathwise: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (reference, matching experiment): the primary population's value, interval,
    window range and verdict, and the same under the original study's inclusion rule.

    An experiment matches a reference by activation, δ type and dataset kind; every matching
    experiment (the shuffle-defect ablation too) gets its own row. ``population`` says which
    networks the numbers describe (:func:`resnet_scaling.scaling.exponents.fit_populations`); with the
    ``robustness`` table, ``windows`` gives the range of the local exponent over the sliding
    depth windows of that population (for a regime, the regime in each window), and a verdict
    that some window would change says so. ``pathwise`` (``results/limits/pathwise_verdicts.csv``)
    adds the pathwise limit test of the same networks to each regime row; a regime read as the
    ODE with rough weights whose networks have no pathwise limit says so instead.
    """
    thresholds = thresholds or RegimeThresholds()
    rows = []
    for ref in references:
        match = regimes[
            (regimes["activation"] == ref.activation)
            & (regimes["delta"] == ref.delta)
            & regimes["dataset_kind"].isin(ref.dataset_kinds)
        ]
        for experiment in dict.fromkeys(match["experiment"]):
            primary, original = _populations(match, experiment)
            result = _evaluate(ref, primary, exponents, robustness, rounding, thresholds, pathwise)
            if _same_networks(primary, original):
                beside = "the same networks"
            else:
                beside = f"{population_words(original)}: " + _beside(
                    _evaluate(ref, original, exponents, robustness, rounding, thresholds, pathwise))
            population = population_words(primary)
            others = match[(match["experiment"] == experiment) & (match.index != primary.name)]
            for _, other in others.iterrows():
                if other["regime"] == NOT_EVALUATED and primary["regime"] != NOT_EVALUATED:
                    population += f"; not evaluated: {other.get('population_note')}"
            kind = str(primary["dataset_kind"])
            rows.append({
                "reference": ref.key, "kind": ref.kind, "description": ref.description, "experiment": experiment,
                "dataset": primary["dataset"], "data": DATA_WORDS.get(kind, str(primary["dataset"])),
                "shuffle": primary.get("shuffle", ""), "population": population,
                "reference_value": ref.regime or f"{ref.value:.1f}", **result, "original_rule": beside,
                "provenance": ref.provenance + STAND_IN * (kind == "digits" and "mnist" in ref.dataset_kinds),
            })
    return pd.DataFrame(rows, columns=[
        "reference", "kind", "description", "experiment", "dataset", "data", "shuffle", "population",
        "reference_value", "ours", "interval", "windows", "agree", "verdict", "original_rule", "provenance",
    ])


#: What a regime found instead of the reference one says about the limit (docs/maths.md §3, §4).
REGIME_CAUSES = {
    ROUGH_ODE: ": the weights are rough but of size 1/L with a vanishing quadratic variation, so the layer "
               "noise averages out: the evidence supports the mean-field ODE of docs/maths.md §4(e), not an SDE",
    "neither": ": neither the smooth (ODE) nor the diffusive (SDE) shape of docs/maths.md §3",
}


def _regime_measurements(reg: pd.Series) -> str:
    """The three slopes the regime rule reads (docs/maths.md §3), as measured."""
    parts = []
    for column, words in (("exponent", f"exponent of M ({reg.get('exponent_statistic', 'rms_norm')})"),
                          ("increment_ratio_slope", "increment-ratio slope"),
                          ("quadratic_variation_slope", "quadratic-variation slope")):
        value = reg.get(column, math.nan)
        if value is not None and math.isfinite(float(value)):
            parts.append(f"{words} {float(value):.2f}")
    return f"; measured: {', '.join(parts)}" if parts else ""


def _verdict(kind: str, agree: bool) -> str:
    return VERDICT_WORDS[kind][0 if agree else 1]


#: Training statuses in the order of the outcome table, with their column headings.
OUTCOME_STATUSES = (("converged", "converged"), ("stopped", "stopped on the plateau"),
                    ("max_epochs", "out of epochs"), ("diverged", "diverged"))


#: Non-affine share of the output below which a network acts nearly affinely (the schema's
#: ``scaling.scorecard.non_affine_threshold``).
NON_AFFINE_THRESHOLD = section_settings("scaling.scorecard")["non_affine_threshold"]


def training_outcome(training: pd.DataFrame, epsilon: dict[str, float], affine_floor: dict[str, float],
                     populations: dict[str, str] | None = None) -> pd.DataFrame:
    """Per experiment: how many networks ended in each status, the median final training loss
    and non-affine share of each status, ε, and the affine floor of its training data
    (docs/maths.md §2); with ``populations`` (experiment → the population of its primary verdict,
    'converged' or 'converged+stopped'), the median and largest non-affine share of that population."""
    rows = []
    for experiment, part in training.groupby("experiment", sort=False):
        row = {"experiment": experiment, "networks": len(part), "epsilon": float(epsilon[experiment]),
               "affine_floor": float(affine_floor[experiment])}
        share = part["non_affine_share"] if "non_affine_share" in part else pd.Series(math.nan, index=part.index)
        for status, _ in OUTCOME_STATUSES:
            hit = part[part["status"] == status]
            loss = hit["train_loss"] if "train_loss" in hit else pd.Series(math.nan, index=hit.index)
            row[f"n_{status}"] = len(hit)
            row[f"median_loss_{status}"] = float(loss.median()) if loss.notna().any() else math.nan
            row[f"median_non_affine_{status}"] = float(share[hit.index].median()) if share[hit.index].notna().any() else math.nan
        population = (populations or {}).get(experiment)
        row["population"] = population or ""
        if population:
            members = share[part["status"].isin(population.split("+"))].dropna()
            row["population_non_affine_median"] = float(members.median()) if len(members) else math.nan
            row["population_non_affine_max"] = float(members.max()) if len(members) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
