"""Our exponents and regimes beside the reference values of the original study.

Every reference has a *kind*: a ``measurement`` the paper reports, a ``plotting-constant``
written into the released plotting code, a ``figure-reading`` of a shipped figure, or a
``claim`` of the paper's text tested under a training choice this workflow names. The
β = 0.2, 0.5 and 0.4 of Cohen, Cont, Rossier & Xu (ICML 2021) for fully connected networks
are plotting constants: the ``factor=`` of an assumed L^f rescaling in the hypothesis
figures of ``plots_fully_connected.py`` in ``instadeepai/scaling-resnets``, not fitted
values. A row against a plotting constant is therefore *consistent* or *inconsistent* with
it, never a disagreement with a measurement. A row is evaluated only when the experiment
has usable networks; otherwise its verdict says why it is not.

An exponent row is consistent when the reference lies in our 95 % interval widened by the
rounding half-width (0.05); a regime row when the regimes are equal.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ..config import section_settings
from .exponents import NO_USABLE_NETWORKS, NOT_EVALUATED, ROUGH_ODE, RegimeThresholds, classify

CODE = "instadeepai/scaling-resnets"
PLOTS = f"{CODE}, plots_fully_connected.py"
#: Kinds of reference value, and the words of a verdict against each.
VERDICT_WORDS = {
    "measurement": ("agree", "disagree"),
    "plotting-constant": ("consistent with the plotting constant", "differs from the plotting constant"),
    "figure-reading": ("agrees with the figure reading", "differs from the figure reading"),
    "claim": ("the claim holds under this training choice", "the claim does not hold under this training choice"),
}


@dataclass(frozen=True)
class Reference:
    """One published value: an exponent (``value``) or a regime reading (``regime``)."""

    key: str
    activation: str
    delta: str
    dataset_kinds: tuple[str, ...]
    description: str
    provenance: str
    kind: str = "measurement"
    quantity: str = ""
    statistic: str = ""
    value: float = math.nan
    regime: str = ""


REFERENCES: tuple[Reference, ...] = (
    Reference(
        key="tanh-shared-synthetic-beta",
        activation="tanh", delta="shared", dataset_kinds=("synthetic",),
        description="β of A (max norm), tanh, shared δ, synthetic data",
        quantity="A", statistic="max_norm", value=0.2, kind="plotting-constant",
        provenance=f"{PLOTS}, hypothesis_tanh_shared_delta (line 81): run_regression(..., factor=0.2)",
    ),
    Reference(
        key="relu-multi-synthetic-beta",
        activation="relu", delta="multi", dataset_kinds=("synthetic",),
        description="β of |δ_k|A_k (max norm), ReLU, per-layer δ, synthetic data",
        quantity="M_abs", statistic="max_norm", value=0.5, kind="plotting-constant",
        provenance=f"{PLOTS}, hypothesis_relu_delta_scalar: regression_delta_times_AorB(path_toy, ..., factor=0.5)",
    ),
    Reference(
        key="relu-multi-mnist-beta",
        activation="relu", delta="multi", dataset_kinds=("mnist", "digits"),
        description="β of |δ_k|A_k (max norm), ReLU, per-layer δ, MNIST",
        quantity="M_abs", statistic="max_norm", value=0.4, kind="plotting-constant",
        provenance=f"{PLOTS}, hypothesis_relu_delta_scalar: regression_delta_times_AorB(path_mnist, ..., factor=0.4)",
    ),
    Reference(
        key="tanh-shared-regime",
        activation="tanh", delta="shared", dataset_kinds=("synthetic", "mnist", "digits"),
        description="regime, tanh, shared δ: smooth weights (ODE-type)",
        regime="ODE", kind="figure-reading",
        provenance="Cohen et al. (ICML 2021), abstract (alternative ODE limits for smooth activations); "
        f"{PLOTS}, scaling_tanh_shared_delta and hypothesis_tanh_shared_delta (the code that draws the tanh / "
        "shared δ figures; the figures themselves are not released: the repository's figs/ holds the CIFAR-10 "
        "images only)",
    ),
    Reference(
        key="relu-multi-regime",
        activation="relu", delta="multi", dataset_kinds=("synthetic", "mnist", "digits"),
        description="regime, ReLU, per-layer δ: rough, Brownian-like weights (SDE-type)",
        regime="SDE", kind="figure-reading",
        provenance="Cohen et al. (ICML 2021), abstract (SDE limits); "
        f"{CODE}, plots_fully_connected.py, individual_delta_relu_scaling_delta (the rough δ_k at L = 9100)",
    ),
    Reference(
        key="tanh-diffusive-regime",
        activation="tanh", delta="fixed", dataset_kinds=("synthetic", "mnist", "digits"),
        description="regime, SDE-type shape: tanh, δ = L^-1/2 fixed, O(1) i.i.d. initial layers, Adam "
                    "(the training choice under which the phase diagram finds it)",
        regime="SDE", kind="claim",
        provenance="Cohen et al. (ICML 2021), abstract (SDE limits of trained networks); no fully connected run of "
        f"{CODE} trains this choice: it is the SDE cell of the training-side phase diagram (regimes study)",
    ),
)

CIFAR_FIGS = f"{CODE}, figs/cifar-{{}}-scaling-max_norm.png"
CIFAR_HYP = f"{CODE}, figs/cifar-{{}}-hyp-pink_sssq-orange_beta_increment.png"
#: Readings of the shipped figures of the convolutional (CIFAR-10) experiment: conv1 kernels
#: as A_k, conv2 kernels as δ_k, operator norms; the regime stage of ``conv_experiments``.
CONV_REFERENCES: tuple[Reference, ...] = (
    *(
        Reference(
            key=f"cifar-{q}-{stat}", activation="relu", delta="conv", dataset_kinds=("cifar10",),
            description=f"CIFAR-10 ResNet, {what} of {conv} kernels ({words})",
            quantity=q, statistic=stat, value=value, kind="figure-reading",
            provenance=(CIFAR_FIGS if stat == "max_norm" else CIFAR_HYP).format(name),
        )
        for q, conv, name in (("A", "conv1", "A"), ("delta", "conv2", "delta"))
        for stat, what, words, value in (
            ("max_norm", "β" if q == "A" else "α", "max operator norm", 0.0 if q == "A" else 0.1),
            ("root_sum_squares", "exponent", "root sum of squares; slope 0.0", 0.0),
            ("max_increment", "exponent", "max increment; slope 0.0", 0.0),
        )
    ),
    Reference(
        key="cifar-regime", activation="relu", delta="conv", dataset_kinds=("cifar10",),
        description="regime, CIFAR-10 ResNet: neither an ODE nor an SDE", regime="neither", kind="figure-reading",
        provenance=CIFAR_HYP.format("A") + " and " + CIFAR_HYP.format("delta").removeprefix(f"{CODE}, "),
    ),
)

#: Values of the convolutional (CIFAR-10) experiment, scored by its own stage (``conv_experiments``).
NOT_RUN = (
    ("CIFAR-10 ResNet, β of conv1 kernels (max operator norm)", "0.0", f"{CODE}, figs/cifar-A-scaling-max_norm.png"),
    ("CIFAR-10 ResNet, α of conv2 kernels (max operator norm)", "0.1", f"{CODE}, figs/cifar-delta-scaling-max_norm.png"),
    ("CIFAR-10 ResNet, regime", "neither",
     f"{CODE}, figs/cifar-A-hyp-pink_sssq-orange_beta_increment.png (increment and root-sum-of-squares slopes 0.0)"),
)


#: Said of a reference measured on MNIST and scored on the offline digits.
STAND_IN = "; scored on the offline digits, which stand in for MNIST"


def _interval(low: float, high: float) -> str:
    return f"[{low:.2f}, {high:.2f}]" if math.isfinite(low) and math.isfinite(high) else "n/a"


#: What the data of an experiment are, where they are not what the reference was measured on.
DATA_WORDS = {"digits": "digits (the 1,024 scikit-learn 8×8 digits standing in for MNIST)"}


def _flag(value) -> bool:
    return str(value).strip().lower() in ("true", "1")


def _populations(regimes: pd.DataFrame, experiment: str) -> tuple[pd.Series, pd.Series]:
    """The primary and the original rule's population rows of an experiment (the same row when
    they are one population, or when the table has no populations)."""
    rows = regimes[regimes["experiment"] == experiment]
    if "primary" not in rows:
        return rows.iloc[0], rows.iloc[0]
    primary = rows[rows["primary"].map(_flag)].iloc[0]
    original = rows[rows["original_rule"].map(_flag)] if "original_rule" in rows else rows.iloc[:0]
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
    elif not _flag(reg.get("original_rule", True)):
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
        return {"ours": f"{ours:.2f}", "interval": _interval(low, high), "windows": windows, "agree": False,
                "verdict": f"undetermined: the interval is wider than {thresholds.max_ci_width:g}" + depends}
    return {"ours": f"{ours:.2f}", "interval": _interval(low, high), "windows": windows, "agree": bool(agree),
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
            return f"{r['exponent']:.2f} {_interval(r['ci_low'], r['ci_high'])}"
        return f"{r['slope']:+.2f} {_interval(r['slope_ci_low'], r['slope_ci_high'])}"

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
                 if _flag(reg.get(flag, False))]
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


def _markdown_table(rows: list[list[str]]) -> str:
    cell = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def _html_table(rows: list[list[str]]) -> str:
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
                cells.append(f"{h['exponent']:.2f} {_interval(h['ci_low'], h['ci_high'])} ({int(h['n_networks'])} nets)")
            else:
                cells.append("no network")
        rows.append([r["description"], r["experiment"], *cells])
    return rows if len(rows) > 1 else None


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
                    non_affine_threshold: float = NON_AFFINE_THRESHOLD, notes: Sequence[str] = ()) -> str:
    """The scorecard in Markdown; ``notes`` (paragraphs) say how its rows were made where that
    is not the workflow's run of one config (a gallery with carried experiments)."""
    rule = str(regimes["rule"].iloc[0]) if len(regimes) else ""
    parts = ["## How these rows were made\n\n" + "\n\n".join(notes) + "\n"] if notes else []
    for heading, text, rows in _sections(scores, exponents, regimes, rule, include_status, robustness, outcome,
                                               non_affine_threshold):
        parts.append(f"## {heading}\n\n{text}\n")
        if rows:
            parts.append(_markdown_table(rows) + "\n")
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
            parts.append(_html_table(rows))
    return "".join(parts) + "</body></html>\n"
