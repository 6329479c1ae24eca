"""The verdict stage: reference values with provenance (verdict.references), verdicts (verdict.score),
and the rendered scorecard with its table helpers (verdict.render)."""

from html.parser import HTMLParser

import numpy as np
import pytest
import pandas as pd

from resnet_scaling.verdict.references import REFERENCES
from resnet_scaling.verdict.render import html_table, markdown_table, render_html, render_markdown
from resnet_scaling.verdict.score import score, training_outcome


def _tables():
    regimes = pd.DataFrame([
        {"experiment": "tanh_syn", "dataset": "synthetic", "dataset_kind": "synthetic", "activation": "tanh",
         "delta": "shared", "shuffle": "correct", "regime": "ODE", "support": 0.9, "n_depths": 13, "n_seeds": 4,
         "excluded": "", "rule": "the rule"},
        {"experiment": "relu_dig", "dataset": "digits", "dataset_kind": "digits", "activation": "relu",
         "delta": "multi", "shuffle": "correct", "regime": "neither", "support": 0.7, "n_depths": 13, "n_seeds": 4,
         "excluded": "diverged:2", "rule": "the rule"},
        {"experiment": "relu_none", "dataset": "synthetic", "dataset_kind": "synthetic", "activation": "relu",
         "delta": "none", "shuffle": "correct", "regime": "SDE", "support": 1.0, "n_depths": 13, "n_seeds": 4,
         "excluded": "", "rule": "the rule"},
    ])
    rows = [
        ("tanh_syn", "A", "max_norm", 0.22, 0.15, 0.28),
        ("tanh_syn", "M", "rms_norm", 0.95, 0.9, 1.0),
        ("relu_dig", "M_abs", "max_norm", 0.61, 0.50, 0.72),
        ("relu_dig", "M", "rms_norm", 0.6, 0.5, 0.7),
    ]
    exponents = pd.DataFrame(
        [{"experiment": e, "quantity": q, "statistic": s, "exponent": x, "ci_low": lo, "ci_high": hi,
          "slope": -x, "slope_ci_low": -hi, "slope_ci_high": -lo} for e, q, s, x, lo, hi in rows]
    )
    return exponents, regimes


def test_reference_values_and_provenance():
    by_key = {r.key: r for r in REFERENCES}
    assert by_key["tanh-shared-synthetic-beta"].value == 0.2 and by_key["tanh-shared-synthetic-beta"].quantity == "A"
    assert by_key["relu-multi-synthetic-beta"].value == 0.5
    assert by_key["relu-multi-mnist-beta"].value == 0.4 and "digits" in by_key["relu-multi-mnist-beta"].dataset_kinds
    assert {r.regime for r in REFERENCES if r.regime} == {"ODE", "SDE"}
    for ref in REFERENCES:
        assert "instadeepai/scaling-resnets" in ref.provenance
        assert ".md" not in ref.provenance  # a file of the released code or the paper, no outside notes
    # the β values are factor= constants of the plotting code, the regimes readings of figures
    assert {r.kind for r in REFERENCES if r.value == r.value} == {"plotting-constant"}
    assert {r.kind for r in REFERENCES if r.regime} == {"figure-reading", "claim"}


def test_the_sde_row_names_the_training_choice_where_the_shape_holds():
    """Beside the ReLU/per-layer-δ rows (SDE-type read, another shape found), the tanh/δ = L^-1/2
    row names its training choice and quotes the measured slopes whether or not it holds."""
    exponents, regimes = _tables()
    sde = {**regimes.iloc[0].to_dict(), "experiment": "tanh_diffusive", "delta": "fixed", "regime": "SDE",
           "support": 0.97, "exponent": 0.52, "increment_ratio_slope": 0.01, "quadratic_variation_slope": -0.02}
    regimes = pd.concat([regimes, pd.DataFrame([sde])], ignore_index=True)
    scores = score(exponents, regimes)
    row = scores.set_index(["reference", "experiment"]).loc[("tanh-diffusive-regime", "tanh_diffusive")]
    assert row["agree"] and "δ = L^-1/2" in row["description"] and "Adam" in row["description"]
    assert row["verdict"] == ("the claim holds under this training choice; measured: exponent of M (rms_norm) 0.52, "
                              "increment-ratio slope 0.01, quadratic-variation slope -0.02")
    order = list(scores["reference"])
    assert order.index("tanh-diffusive-regime") == order.index("relu-multi-regime") + 1  # beside the ReLU rows
    regimes.loc[regimes["experiment"] == "tanh_diffusive", "regime"] = "neither"
    row = score(exponents, regimes).set_index(["reference", "experiment"]).loc[("tanh-diffusive-regime", "tanh_diffusive")]
    assert not row["agree"] and row["verdict"].startswith("the claim does not hold under this training choice: neither")


def test_a_row_scored_on_the_digits_says_they_stand_in_for_mnist_and_one_on_mnist_does_not():
    exponents, regimes = _tables()
    mnist = regimes[regimes["experiment"] == "relu_dig"].assign(experiment="relu_mnist", dataset="mnist",
                                                                 dataset_kind="mnist")
    exponents = pd.concat([exponents, exponents[exponents["experiment"] == "relu_dig"].assign(experiment="relu_mnist")])
    scores = score(exponents, pd.concat([regimes, mnist], ignore_index=True)).set_index(["reference", "experiment"])
    for key in ("relu-multi-mnist-beta", "relu-multi-regime"):
        assert scores.loc[(key, "relu_dig"), "provenance"].endswith("; scored on the offline digits, which stand in for MNIST")
        assert "digits" not in scores.loc[(key, "relu_mnist"), "provenance"]
    assert "digits" not in scores.loc[("tanh-shared-synthetic-beta", "tanh_syn"), "provenance"]


def test_rough_ode_regime_row_says_which_limit_the_evidence_supports():
    exponents, regimes = _tables()
    regimes.loc[regimes["experiment"] == "relu_dig", "regime"] = "ODE (rough weights)"
    scores = score(exponents, regimes).set_index(["reference", "experiment"])
    verdict = scores.loc[("relu-multi-regime", "relu_dig"), "verdict"]
    assert verdict.startswith("differs from the figure reading: the weights are rough but of size 1/L")
    assert "mean-field ODE of docs/maths.md §4(e)" in verdict


def test_experiment_without_usable_networks_is_not_evaluated_and_says_why():
    exponents, regimes = _tables()
    regimes.loc[regimes["experiment"] == "relu_dig", ["regime", "note"]] = [
        "no usable networks", "all 8 networks excluded (diverged:8)"]
    scores = score(exponents, regimes).set_index(["reference", "experiment"])
    row = scores.loc[("relu-multi-mnist-beta", "relu_dig")]
    assert row["verdict"] == "not evaluated: all 8 networks excluded (diverged:8)" and not row["agree"]
    assert scores.loc[("tanh-shared-synthetic-beta", "tanh_syn"), "verdict"] == "consistent with the plotting constant"


def test_verdicts():
    exponents, regimes = _tables()
    scores = score(exponents, regimes).set_index(["reference", "experiment"])
    assert scores.loc[("tanh-shared-synthetic-beta", "tanh_syn"), "agree"]  # 0.2 in [0.15, 0.28]
    assert scores.loc[("tanh-shared-regime", "tanh_syn"), "agree"]
    # 0.4 lies below [0.50, 0.72] even when widened by the rounding half-width 0.05
    assert not scores.loc[("relu-multi-mnist-beta", "relu_dig"), "agree"]
    assert not scores.loc[("relu-multi-regime", "relu_dig"), "agree"]
    assert "relu_none" not in scores.index.get_level_values("experiment")  # δ none matches no reference
    wide = score(exponents, regimes, rounding=0.1).set_index(["reference", "experiment"])
    assert wide.loc[("relu-multi-mnist-beta", "relu_dig"), "agree"]


def test_missing_exponent_is_a_disagreement():
    exponents, regimes = _tables()
    scores = score(exponents[exponents["quantity"] != "A"], regimes).set_index(["reference", "experiment"])
    row = scores.loc[("tanh-shared-synthetic-beta", "tanh_syn")]
    assert row["ours"] == "n/a" and not row["agree"] and row["verdict"] == "not evaluated: no fit"


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        self.rows += tag == "tr"


def test_rendered_scorecard_quotes_exponents_with_intervals():
    exponents, regimes = _tables()
    scores = score(exponents, regimes)
    md = render_markdown(scores, exponents, regimes)
    assert "2 of 4 rows agree" in md
    assert "0.95 [0.90, 1.00]" in md and "0.22 [0.15, 0.28]" in md  # exponents with intervals
    assert "ODE (90%)" in md and "diverged:2" in md
    assert "| differs from the plotting constant |" in md
    assert "| differs from the figure reading: neither the smooth (ODE) nor the diffusive (SDE) shape" in md
    assert "| disagree |" not in md  # no reference here is a measurement
    assert "β of \\|δ_k\\|A_k" in md  # pipes escaped inside table cells
    parser = _Cells()
    parser.feed(render_html(scores, exponents, regimes))
    header_rows = 3
    assert parser.rows == header_rows + len(scores) + len(regimes) + 3


def test_no_matching_experiment_gives_an_empty_scorecard():
    exponents, regimes = _tables()
    regimes = regimes[regimes["experiment"] == "relu_none"]
    scores = score(exponents, regimes)
    assert scores.empty
    assert "0 of 0 rows agree" in render_markdown(scores, exponents, regimes)


def test_scorecard_states_the_inclusion_rule_and_what_the_others_give():
    exponents, regimes = _tables()
    robustness = pd.DataFrame([
        {"experiment": "tanh_syn", "quantity": "A", "statistic": "max_norm", "analysis": "inclusion",
         "variant": v, "exponent": e, "ci_low": e - 0.05, "ci_high": e + 0.05, "n_depths": 13, "n_networks": n}
        for v, e, n in (("converged only", 0.31, 40), ("+ stopped on the plateau", 0.22, 52),
                        ("+ out of epochs", 0.2, 52))
    ])
    md = render_markdown(score(exponents, regimes), exponents, regimes, ("converged", "stopped"), robustness)
    assert "The original rule admits the statuses converged, stopped" in md
    assert "| β of A (max norm), tanh, shared δ, synthetic data | tanh_syn | 0.31 [0.26, 0.36] (40 nets) |" in md


def test_window_range_beside_the_interval_and_a_verdict_that_depends_on_the_window():
    exponents, regimes = _tables()
    robustness = pd.DataFrame([
        {"experiment": "relu_dig", "quantity": "M_abs", "statistic": "max_norm", "analysis": "window",
         "variant": f"depths {lo}..{hi}", "depth_centre": (lo * hi) ** 0.5, "exponent": e, "ci_low": e - 0.1,
         "ci_high": e + 0.1, "n_depths": 5, "n_networks": 20}
        for lo, hi, e in ((16, 64, 0.72), (64, 256, 0.6), (256, 1024, 0.45))
    ] + [{"experiment": "relu_dig", "quantity": "M_abs", "statistic": "max_norm", "analysis": "inclusion",
          "variant": "converged only", "depth_centre": 128.0, "exponent": 0.54, "ci_low": 0.4, "ci_high": 0.7,
          "n_depths": 13, "n_networks": 30}])
    scores = score(exponents, regimes, robustness=robustness).set_index(["reference", "experiment"])
    row = scores.loc[("relu-multi-mnist-beta", "relu_dig")]
    assert row["windows"] == "0.45–0.72 over 3 windows (depths 16..64 … 256..1024)"
    # 0.4 lies outside [0.50, 0.72] widened by 0.05, but inside the last window's [0.35, 0.55]
    assert row["verdict"] == ("differs from the plotting constant; depends on the window: consistent with the "
                              "plotting constant in 1 of 3 windows")
    steady = robustness.assign(exponent=0.61, ci_low=0.55, ci_high=0.67)
    row = score(exponents, regimes, robustness=steady).set_index(["reference", "experiment"]).loc[
        ("relu-multi-mnist-beta", "relu_dig")]
    assert row["verdict"] == "differs from the plotting constant"  # the same in every window: no caveat


def test_training_outcome_counts_statuses_and_compares_losses_with_the_affine_floor():
    exponents, regimes = _tables()
    training = pd.DataFrame(
        [{"experiment": "tanh_syn", "depth": 8, "seed": s, "status": "converged", "train_loss": 8e-4 + s * 1e-5}
         for s in range(3)]
        + [{"experiment": "relu_dig", "depth": d, "seed": 0, "status": st, "train_loss": loss}
           for d, st, loss in ((8, "stopped", 0.016), (16, "stopped", 0.018), (32, "max_epochs", 0.02),
                               (64, "converged", 9e-4))]
    )
    outcome = training_outcome(training, {"tanh_syn": 1e-3, "relu_dig": 1e-3}, {"tanh_syn": 5e-4, "relu_dig": 0.0152})
    by_exp = outcome.set_index("experiment")
    assert by_exp.loc["tanh_syn", "n_converged"] == 3 and by_exp.loc["tanh_syn", "n_stopped"] == 0
    assert np.isclose(by_exp.loc["tanh_syn", "median_loss_converged"], 8.1e-4)
    assert np.isclose(by_exp.loc["relu_dig", "median_loss_stopped"], 0.017)
    assert by_exp.loc["relu_dig", "n_max_epochs"] == 1 and by_exp.loc["relu_dig", "networks"] == 4
    md = render_markdown(score(exponents, regimes), exponents, regimes, outcome=outcome)
    assert "## How the training ended" in md
    assert ("| relu_dig | 4 | 1 (median loss 0.0009) | 2 (median loss 0.017) | 1 (median loss 0.02) | 0 | 0.001 | "
            "0.015 | ε is below the affine floor: only a network that uses its nonlinearity converges; "
            "the plateau losses are 1.12 × the floor (the stopped networks act nearly affinely) |") in md
    assert "| tanh_syn | 3 | 3 (median loss 0.00081) | 0 | 0 | 0 | 0.001 | 0.0005 | ε is above the affine floor" in md


def test_a_regime_that_differs_quotes_the_slopes_the_rule_read():
    exponents, regimes = _tables()
    regimes = regimes.assign(exponent_statistic="rms_norm", exponent=[0.97, 0.83, 0.5],
                             increment_ratio_slope=[-1.0, -0.02, 0.0], quadratic_variation_slope=[-3.0, -0.63, 0.0])
    verdicts = score(exponents, regimes).set_index("reference")["verdict"]
    assert verdicts["relu-multi-regime"].endswith(
        "; measured: exponent of M (rms_norm) 0.83, increment-ratio slope -0.02, quadratic-variation slope -0.63")
    assert "measured" not in verdicts["tanh-shared-regime"]  # agrees: no cause needed


def _populations():
    """ReLU / per-layer δ on synthetic data with two populations: converged (primary) and the
    original rule's converged + stopped."""
    base = {"experiment": "relu_syn", "dataset": "synthetic", "dataset_kind": "synthetic", "activation": "relu",
            "delta": "multi", "shuffle": "correct", "n_depths": 13, "n_seeds": 4, "excluded": "", "rule": "the rule",
            "exponent_statistic": "rms_norm", "increment_ratio_slope": 0.0}
    regimes = pd.DataFrame([
        {**base, "population": "converged", "primary": True, "original_rule": False, "members": "converged:40",
         "regime": "neither", "support": 0.8, "exponent": 0.7, "quadratic_variation_slope": -0.4,
         "population_note": ""},
        {**base, "population": "converged+stopped", "primary": False, "original_rule": True,
         "members": "converged:40; stopped:12", "regime": "ODE (rough weights)", "support": 1.0, "exponent": 0.92,
         "quadratic_variation_slope": -0.88, "population_note": ""},
    ])
    exponents = pd.DataFrame([
        {"experiment": "relu_syn", "population": p, "quantity": "M_abs", "statistic": "max_norm", "exponent": x,
         "ci_low": lo, "ci_high": hi, "slope": -x, "slope_ci_low": -hi, "slope_ci_high": -lo}
        for p, x, lo, hi in (("converged", 0.23, 0.20, 0.26), ("converged+stopped", 0.75, 0.70, 0.80))
    ])
    return exponents, regimes


def test_the_primary_population_gives_the_verdict_and_the_original_rule_stands_beside_it():
    exponents, regimes = _populations()
    scores = score(exponents, regimes).set_index("reference")
    beta = scores.loc["relu-multi-synthetic-beta"]
    assert (beta["population"], beta["ours"], beta["interval"]) == ("converged (40 converged)", "0.23", "[0.20, 0.26]")
    assert beta["verdict"] == "differs from the plotting constant"
    assert beta["original_rule"] == ("converged+stopped (40 converged, 12 stopped): 0.75 [0.70, 0.80]: differs "
                                     "from the plotting constant")
    regime = scores.loc["relu-multi-regime"]
    assert regime["ours"] == "neither" and regime["interval"] == "support 80%"
    assert regime["original_rule"].startswith("converged+stopped (40 converged, 12 stopped): ODE (rough weights) "
                                              "support 100%: differs from the figure reading: the weights are rough")
    md = render_markdown(score(exponents, regimes), exponents, regimes, ("converged", "stopped"))
    assert "| converged (40 converged), primary |" in md and "| converged+stopped (40 converged, 12 stopped), original rule |" in md
    assert "0.75 [0.70, 0.80]" in md  # the summary quotes each population's own exponent


def test_rows_scored_on_the_digits_say_so():
    exponents, regimes = _tables()
    scores = score(exponents, regimes).set_index(["reference", "experiment"])
    assert scores.loc[("relu-multi-mnist-beta", "relu_dig"), "data"].startswith("digits (the 1,024 scikit-learn")
    assert scores.loc[("tanh-shared-synthetic-beta", "tanh_syn"), "data"] == "synthetic"
    provenance = {r.key: r.provenance for r in REFERENCES}
    assert "figs/ of the tanh" not in provenance["tanh-shared-regime"]  # the released figs/ holds CIFAR images only
    assert "hypothesis_tanh_shared_delta" in provenance["tanh-shared-regime"]


def _regime_windows(increment_exponents):
    """Window fits of the three statistics of the regime rule: exponent of M 1.0, quadratic-variation
    slope −1 (exponent 1), and the given increment-ratio exponents (−slope) per window."""
    rows = []
    for i, inc in enumerate(increment_exponents):
        for statistic, exponent in (("rms_norm", 1.0), ("increment_ratio", inc), ("quadratic_variation", 1.0)):
            rows.append({"experiment": "relu_syn", "population": "converged", "quantity": "M",
                         "statistic": statistic, "analysis": "window", "variant": f"depths {2 ** i}..{2 ** (i + 4)}",
                         "depth_centre": 2.0 ** (i + 2), "exponent": exponent, "ci_low": exponent - 0.1,
                         "ci_high": exponent + 0.1, "n_depths": 5, "n_networks": 20})
    return pd.DataFrame(rows)


def test_the_regime_is_applied_window_by_window():
    exponents, regimes = _populations()
    regimes.loc[0, "regime"] = "ODE (rough weights)"
    # increment-ratio slopes 0, 0 and +0.8: the rough ODE in two windows, neither in the third
    robustness = _regime_windows([0.0, 0.0, -0.8])
    row = score(exponents, regimes, robustness=robustness).set_index("reference").loc["relu-multi-regime"]
    assert row["windows"] == "ODE (rough weights) in 2, neither in 1 of 3 windows"
    assert not row["verdict"].count("depends on the window")  # SDE in no window: the verdict stands
    # a window whose slopes read SDE would change the verdict: the row says so
    sde = _regime_windows([0.0, 0.0]).assign(exponent=lambda t: np.where(t["statistic"] == "rms_norm", 1.0, t["exponent"]))
    sde.loc[(sde["variant"] == "depths 2..32") & (sde["statistic"] == "rms_norm"), "exponent"] = 0.5
    sde.loc[(sde["variant"] == "depths 2..32") & (sde["statistic"] == "quadratic_variation"), "exponent"] = 0.0
    row = score(exponents, regimes, robustness=sde).set_index("reference").loc["relu-multi-regime"]
    assert row["windows"] == "ODE (rough weights) in 1, SDE in 1 of 2 windows"
    assert row["verdict"].endswith("; depends on the window: SDE in 1 of 2 windows")


def test_each_regime_row_carries_the_pathwise_limit_test_of_its_networks():
    exponents, regimes = _populations()
    regimes.loc[0, "regime"] = "ODE (rough weights)"
    pathwise = pd.DataFrame([
        {"experiment": "relu_syn", "population": "converged", "direction": "forward", "verdict": "neither",
         "reason": "coarsened error at N = 8 against L +0.60 [+0.40, +0.80] grows with depth: no pathwise limit"},
        {"experiment": "relu_syn", "population": "converged", "direction": "backward", "verdict": "ODE", "reason": "x"},
    ])
    row = score(exponents, regimes, pathwise=pathwise).set_index("reference").loc["relu-multi-regime"]
    assert row["ours"] == "rough weights of size 1/L, no pathwise limit" and not row["agree"]
    assert row["verdict"].endswith("; pathwise limit test of the same networks: neither (coarsened error at N = 8 "
                                   "against L +0.60 [+0.40, +0.80] grows with depth: no pathwise limit)")
    holds = pathwise.assign(verdict="ODE", reason="quadratic-variation slope -0.95 [-1.00, -0.90] vanishes")
    row = score(exponents, regimes, pathwise=holds).set_index("reference").loc["relu-multi-regime"]
    assert row["ours"] == "ODE (rough weights)"
    assert "pathwise limit test of the same networks: ODE (quadratic-variation slope" in row["verdict"]
    # a test of other networks than the row's says nothing about them
    other = pathwise.assign(population="converged+stopped")
    row = score(exponents, regimes, pathwise=other).set_index("reference").loc["relu-multi-regime"]
    assert row["ours"] == "ODE (rough weights)" and "pathwise" not in row["verdict"]


def test_the_outcome_table_says_whether_the_exponents_describe_networks_that_use_their_nonlinearity():
    exponents, regimes = _tables()
    training = pd.DataFrame(
        [{"experiment": "tanh_syn", "depth": 8, "seed": s, "status": "converged", "train_loss": 8e-4,
          "non_affine_share": 0.001 * (s + 1)} for s in range(3)]
        + [{"experiment": "relu_dig", "depth": 8, "seed": s, "status": st, "train_loss": 9e-4, "non_affine_share": v}
           for s, (st, v) in enumerate((("converged", 0.36), ("converged", 0.40), ("stopped", 0.002)))]
    )
    outcome = training_outcome(training, {"tanh_syn": 1e-3, "relu_dig": 1e-3}, {"tanh_syn": 5e-4, "relu_dig": 0.015},
                               {"tanh_syn": "converged", "relu_dig": "converged"})
    by_exp = outcome.set_index("experiment")
    assert by_exp.loc["relu_dig", "population_non_affine_median"] == pytest.approx(0.38)
    assert by_exp.loc["relu_dig", "median_non_affine_stopped"] == pytest.approx(0.002)
    md = render_markdown(score(exponents, regimes), exponents, regimes, outcome=outcome)
    assert "2 (median loss 0.0009, non-affine 38 %)" in md
    assert "| converged networks that use their nonlinearity (median non-affine share 38 %, at most 40 %) |" in md
    assert ("| converged networks that act nearly affinely (median non-affine share 0.2 %, at most 0.3 %, below 1 %): "
            "the exponents describe a near-affine map |") in md


def test_a_reference_inside_a_very_wide_interval_is_undetermined_not_consistent():
    exponents, regimes = _tables()
    exponents.loc[exponents.quantity == "M_abs", ["ci_low", "ci_high"]] = [-0.43, 0.82]
    row = score(exponents, regimes).set_index("reference").loc["relu-multi-mnist-beta"]
    assert not row["agree"] and row["verdict"].startswith("undetermined: the interval is wider than 0.5")


def test_table_helpers_escape_what_would_break_the_table():
    rows = [["a", "b|c"], ["<x>", "1 | 2"]]
    assert markdown_table(rows) == "| a | b\\|c |\n|---|---|\n| <x> | 1 \\| 2 |"
    assert html_table(rows) == ("<table><thead><tr><th>a</th><th>b|c</th></tr></thead>"
                                "<tbody><tr><td>&lt;x&gt;</td><td>1 | 2</td></tr></tbody></table>")
