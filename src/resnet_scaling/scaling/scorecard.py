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
from dataclasses import dataclass

import pandas as pd

from .exponents import NO_USABLE_NETWORKS, ROUGH_ODE

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
        f"{CODE}, figs/ of the tanh/shared δ runs",
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


def score(exponents: pd.DataFrame, regimes: pd.DataFrame, rounding: float = 0.05,
          robustness: pd.DataFrame | None = None, references: tuple[Reference, ...] = REFERENCES) -> pd.DataFrame:
    """One row per (reference, matching experiment), with our value and the verdict.

    An experiment matches a reference by activation, δ type and dataset kind; every matching
    experiment (the shuffle-defect ablation too) gets its own row. With the ``robustness``
    table, an exponent row that differs quotes the range of the local exponent over the
    depth windows and the exponent of the converged networks only: measured reasons why one
    number does not describe every depth or every network.
    """
    rows = []
    for ref in references:
        match = regimes[
            (regimes["activation"] == ref.activation)
            & (regimes["delta"] == ref.delta)
            & regimes["dataset_kind"].isin(ref.dataset_kinds)
        ]
        for _, reg in match.iterrows():
            base = {
                "reference": ref.key,
                "kind": ref.kind,
                "description": ref.description,
                "experiment": reg["experiment"],
                "dataset": reg["dataset"],
                "shuffle": reg.get("shuffle", ""),
                "provenance": ref.provenance + (STAND_IN if reg["dataset_kind"] == "digits" and "mnist" in ref.dataset_kinds
                                                else ""),
            }
            if reg["regime"] == NO_USABLE_NETWORKS:
                rows.append({
                    **base, "reference_value": ref.regime or f"{ref.value:.1f}", "ours": "n/a", "interval": "n/a",
                    "agree": False, "verdict": f"not evaluated: {reg.get('note') or NO_USABLE_NETWORKS}",
                })
                continue
            if ref.regime:
                ours, expected = str(reg["regime"]), ref.regime
                support = reg.get("support", math.nan)
                # a claim row quotes its evidence either way; a reading only where it differs
                quoted = ours != expected or ref.kind == "claim"
                rows.append({
                    **base, "reference_value": expected, "ours": ours,
                    "interval": f"support {support:.0%}" if math.isfinite(support) else "n/a",
                    "agree": ours == expected,
                    "verdict": _verdict(ref.kind, ours == expected)
                    + REGIME_CAUSES.get(ours, "") * (ours != expected) + _regime_measurements(reg) * quoted,
                })
                continue
            hit = exponents[
                (exponents["experiment"] == reg["experiment"])
                & (exponents["quantity"] == ref.quantity)
                & (exponents["statistic"] == ref.statistic)
            ]
            if hit.empty:
                ours, low, high = math.nan, math.nan, math.nan
            else:
                ours, low, high = (float(hit.iloc[0][c]) for c in ("exponent", "ci_low", "ci_high"))
            agree = (
                math.isfinite(low) and math.isfinite(high)
                and low - rounding <= ref.value <= high + rounding
            )
            rows.append({
                **base, "reference_value": f"{ref.value:.1f}",
                "ours": f"{ours:.2f}" if math.isfinite(ours) else "n/a",
                "interval": _interval(low, high), "agree": bool(agree),
                "verdict": (_verdict(ref.kind, bool(agree)) + ("" if agree else _measured_cause(robustness, reg["experiment"], ref))
                            if math.isfinite(ours) else "not evaluated: no fit"),
            })
    return pd.DataFrame(rows, columns=[
        "reference", "kind", "description", "experiment", "dataset", "shuffle", "reference_value",
        "ours", "interval", "agree", "verdict", "provenance",
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


def _measured_cause(robustness: pd.DataFrame | None, experiment: str, ref: Reference) -> str:
    """What the robustness table says about an exponent that differs from its reference."""
    if robustness is None or robustness.empty:
        return ""
    part = robustness[(robustness["experiment"] == experiment) & (robustness["quantity"] == ref.quantity)
                      & (robustness["statistic"] == ref.statistic)]
    local = part[(part["analysis"] == "window") & part["exponent"].notna()].sort_values("depth_centre")
    words = []
    if len(local):
        first, last = local.iloc[0], local.iloc[-1]
        words.append(f"local exponent {first['exponent']:.2f} at depths {first['variant'].removeprefix('depths ')}, "
                     f"{last['exponent']:.2f} at {last['variant'].removeprefix('depths ')} "
                     f"(range {local['exponent'].min():.2f}–{local['exponent'].max():.2f})")
    converged = part[(part["analysis"] == "inclusion") & (part["variant"] == "converged only")]
    if len(converged) and math.isfinite(converged["exponent"].iloc[0]):
        words.append(f"{converged['exponent'].iloc[0]:.2f} over converged networks only")
    return ("; measured: " + "; ".join(words)) if words else ""


def _verdict(kind: str, agree: bool) -> str:
    return VERDICT_WORDS[kind][0 if agree else 1]


def summary_table(exponents: pd.DataFrame, regimes: pd.DataFrame) -> list[list[str]]:
    """Per experiment: regime with support and the key exponents with their 95 % intervals."""

    def quote(experiment: str, quantity: str, statistic: str, sign: float = 1.0) -> str:
        hit = exponents[
            (exponents["experiment"] == experiment)
            & (exponents["quantity"] == quantity)
            & (exponents["statistic"] == statistic)
        ]
        if hit.empty or not math.isfinite(float(hit.iloc[0]["exponent"])):
            return "–"
        r = hit.iloc[0]
        if sign > 0:
            return f"{r['exponent']:.2f} {_interval(r['ci_low'], r['ci_high'])}"
        return f"{r['slope']:+.2f} {_interval(r['slope_ci_low'], r['slope_ci_high'])}"

    header = [
        "experiment", "dataset", "σ", "δ", "regime (support)", "M: exponent (rms)",
        "M: exponent (max)", "A: exponent (max)", "δ: exponent (max)",
        "M: increment-ratio slope", "M: quadratic-variation slope", "depths × seeds", "excluded",
    ]
    body = []
    for _, reg in regimes.iterrows():
        e = reg["experiment"]
        support = reg.get("support", math.nan)
        body.append([
            e, str(reg["dataset"]), str(reg["activation"]), str(reg["delta"]),
            f"{reg['regime']} ({support:.0%})" if math.isfinite(support) else str(reg["regime"]),
            quote(e, "M", "rms_norm"), quote(e, "M", "max_norm"), quote(e, "A", "max_norm"),
            quote(e, "delta", "max_norm"), quote(e, "M", "increment_ratio", -1),
            quote(e, "M", "quadratic_variation", -1),
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


def training_outcome(training: pd.DataFrame, epsilon: dict[str, float],
                     affine_floor: dict[str, float]) -> pd.DataFrame:
    """Per experiment: how many networks ended in each status, the median final training loss
    of each status, ε, and the affine floor of its training data (docs/maths.md §2)."""
    rows = []
    for experiment, part in training.groupby("experiment", sort=False):
        row = {"experiment": experiment, "networks": len(part), "epsilon": float(epsilon[experiment]),
               "affine_floor": float(affine_floor[experiment])}
        for status, _ in OUTCOME_STATUSES:
            hit = part[part["status"] == status]
            loss = hit["train_loss"] if "train_loss" in hit else pd.Series(math.nan, index=hit.index)
            row[f"n_{status}"] = len(hit)
            row[f"median_loss_{status}"] = float(loss.median()) if loss.notna().any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _outcome_rows(outcome: pd.DataFrame) -> list[list[str]]:
    rows = [["experiment", "networks", *(heading for _, heading in OUTCOME_STATUSES), "ε",
             "affine floor of the training data", "reading"]]
    for _, r in outcome.iterrows():
        cells = []
        for status, _ in OUTCOME_STATUSES:
            n, loss = int(r[f"n_{status}"]), r[f"median_loss_{status}"]
            cells.append(f"{n} (median loss {loss:.2g})" if n and math.isfinite(loss) else str(n))
        floor, eps, stopped = r["affine_floor"], r["epsilon"], r["median_loss_stopped"]
        if floor > eps:
            reading = "ε is below the affine floor: only a network that uses its nonlinearity converges"
            if r["n_stopped"] and math.isfinite(stopped):
                reading += (f"; the plateau losses are {stopped / floor:.2f} × the floor"
                            + (" (the stopped networks use their nonlinearity)" if stopped < floor
                               else " (the stopped networks act nearly affinely)"))
        else:
            reading = "ε is above the affine floor: a near-affine network can converge"
        rows.append([r["experiment"], str(int(r["networks"])), *cells, f"{eps:.2g}", f"{floor:.2g}", reading])
    return rows


def _sections(scores: pd.DataFrame, exponents: pd.DataFrame, regimes: pd.DataFrame, rule: str,
              include_status: tuple = (), robustness: pd.DataFrame | None = None,
              outcome: pd.DataFrame | None = None):
    """The scorecard as (heading, paragraph, table rows) triples, shared by both renderings."""
    score_rows = [["reference", "kind", "experiment", "reference value", "ours", "95 % interval / support",
                   "verdict", "provenance"]]
    for _, r in scores.iterrows():
        score_rows.append([
            r["description"], r["kind"], r["experiment"], r["reference_value"], r["ours"], r["interval"],
            r["verdict"], r["provenance"],
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
        "a regime row when the regimes are equal."
        + (f" Networks that enter the fits: status {', '.join(include_status)}; the exponents under the other "
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
            "training set), beside the stopping rule's ε and the affine floor: the least loss of any affine "
            "map from inputs to targets, near or above which a network whose blocks stay in the linear range "
            "of their activation stays (docs/maths.md §2).",
            _outcome_rows(outcome),
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
                    outcome: pd.DataFrame | None = None) -> str:
    rule = str(regimes["rule"].iloc[0]) if len(regimes) else ""
    parts = []
    for heading, text, rows in _sections(scores, exponents, regimes, rule, include_status, robustness, outcome):
        parts.append(f"## {heading}\n\n{text}\n")
        if rows:
            parts.append(_markdown_table(rows) + "\n")
    return "# Scaling exponents\n\n" + "\n".join(parts)


def render_html(scores: pd.DataFrame, exponents: pd.DataFrame, regimes: pd.DataFrame,
                include_status: tuple = (), robustness: pd.DataFrame | None = None,
                outcome: pd.DataFrame | None = None) -> str:
    rule = str(regimes["rule"].iloc[0]) if len(regimes) else ""
    style = (
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}</style>"
    )
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>{style}</head><body><h1>Scaling exponents</h1>"]
    for heading, text, rows in _sections(scores, exponents, regimes, rule, include_status, robustness, outcome):
        parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>")
        if rows:
            parts.append(_html_table(rows))
    return "".join(parts) + "</body></html>\n"
