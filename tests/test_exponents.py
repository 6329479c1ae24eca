"""Exponents, the seed bootstrap and the verdicts per population on weight sequences with known
answers (the rule itself: tests/test_regime_rule.py)."""

import numpy as np
import pandas as pd
import pytest

import scaling_problems as sp
from resnet_scaling.scaling.exponents import (
    FitSettings,
    SeedGrid,
    exponents_of,
    fit_all,
    fit_experiment,
    fit_populations,
    fit_grid,
    loglog_fit,
    weighted_slopes,
)
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.scaling.statistics import experiment_statistics

SETTINGS = FitSettings(min_depth=16, resamples=400)


def test_loglog_fit_is_the_ols_fit_of_the_logs_with_its_t_interval():
    """The one log-log fit of tables and figures: OLS of log y on log x (scipy's linregress as the
    reference), the t-interval with n − 2 degrees of freedom, and the points that cannot be
    logged left out."""
    from scipy import stats

    rng = np.random.default_rng(3)
    x = np.geomspace(4, 1024, 9)
    y = 3.0 * x**-0.5 * np.exp(0.1 * rng.standard_normal(len(x)))
    fit = loglog_fit(np.r_[x, 0.0, np.nan, 8.0], np.r_[y, 1.0, 2.0, -1.0])
    ref = stats.linregress(np.log(x), np.log(y))
    half = stats.t.ppf(0.975, len(x) - 2) * ref.stderr
    assert fit.n == len(x)
    np.testing.assert_allclose([fit.slope, fit.intercept, fit.stderr], [ref.slope, ref.intercept, ref.stderr])
    np.testing.assert_allclose([fit.ci_low, fit.ci_high], [ref.slope - half, ref.slope + half])
    np.testing.assert_allclose(fit.line(x), np.exp(ref.intercept) * x**ref.slope)
    assert fit.label() == f"slope {ref.slope:+.2f} [{ref.slope - half:+.2f}, {ref.slope + half:+.2f}]"
    exact = loglog_fit(x, 2.0 * x**1.5)
    assert exact.slope == pytest.approx(1.5) and exact.intercept == pytest.approx(np.log(2.0))
    two = loglog_fit(x[:2], y[:2])
    assert np.isfinite(two.slope) and np.isnan(two.stderr) and np.isnan(two.ci_low) and two.n == 2


def _statistics(kind: str, beta: float = 0.3, seeds: int = 4, dim: int = 10, depths=sp.DEPTHS, status=None,
                name: str | None = None) -> pd.DataFrame:
    nets = [sp.network(kind, L, seeds, dim, beta, status, experiment=name) for L in depths]
    labels = {"dataset": "toy", "dataset_kind": "synthetic", "activation": "tanh",
              "delta": nets[0].delta_type, "shuffle": "correct"}
    return experiment_statistics(nets, labels=labels)[0]


def _row(table: pd.DataFrame, quantity: str, statistic: str) -> pd.Series:
    return table[(table["quantity"] == quantity) & (table["statistic"] == statistic)].iloc[0]


@pytest.mark.parametrize("beta", [0.2, 0.5])
def test_smooth_weights_give_beta_and_ODE(beta):
    """A_k = L^{-β} f(k/L) with shared δ = L^{β−1}: exponent of A is β, of δ 1 − β, of M 1; ODE."""
    table, regime = fit_experiment(_statistics("smooth", beta), SETTINGS, RegimeThresholds())
    for statistic in ("max_norm", "rms_norm"):
        assert _row(table, "A", statistic)["exponent"] == pytest.approx(beta, abs=0.05)
        assert _row(table, "M", statistic)["exponent"] == pytest.approx(1.0, abs=0.05)
    assert _row(table, "delta", "max_norm")["exponent"] == pytest.approx(1 - beta, abs=1e-9)
    assert regime["regime"] == "ODE" and regime["support"] == 1.0


def test_brownian_weights_give_one_half_and_SDE():
    table, regime = fit_experiment(_statistics("brownian"), SETTINGS, RegimeThresholds())
    for statistic in ("max_norm", "rms_norm"):
        row = _row(table, "M", statistic)
        assert row["exponent"] == pytest.approx(0.5, abs=0.05)
        assert row["ci_low"] <= row["exponent"] <= row["ci_high"]
    assert regime["regime"] == "SDE" and regime["support"] > 0.95
    assert abs(regime["increment_ratio_slope"]) < 0.05 and abs(regime["quadratic_variation_slope"]) < 0.05


def test_constant_size_rough_weights_give_neither():
    table, regime = fit_experiment(_statistics("rough"), SETTINGS, RegimeThresholds())
    assert _row(table, "M", "rms_norm")["exponent"] == pytest.approx(0.0, abs=0.05)
    assert regime["regime"] == "neither" and regime["support"] > 0.95


def test_rough_weights_of_size_one_over_depth_give_the_rough_ode():
    """docs/maths.md §4(e): M of size 1/L, flat increment ratio, quadratic variation ~ L^{-1}."""
    table, regime = fit_experiment(_statistics("rough_mean_field"), SETTINGS, RegimeThresholds())
    assert _row(table, "M", "rms_norm")["exponent"] == pytest.approx(1.0, abs=0.05)
    assert regime["increment_ratio_slope"] == pytest.approx(0.0, abs=0.1)
    assert regime["quadratic_variation_slope"] == pytest.approx(-1.0, abs=0.1)
    assert regime["regime"] == "ODE (rough weights)" and regime["support"] > 0.9


def test_interval_coverage_log_linear_model():
    """95 % intervals over 300 replications of log y = a − 0.4 log L + 0.2 ε, 4 seeds × 8 depths:
    the coverage is near 0.95 (0.95 over 1000 replications; a plain percentile interval gives 0.92)."""
    depths = np.array([8, 16, 32, 64, 128, 256, 512, 1024])
    networks = pd.DataFrame([(L, s) for L in depths for s in range(4)], columns=["depth", "seed"])
    rng = np.random.default_rng(11)
    hits = 0
    for r in range(300):
        grid = SeedGrid.build(networks, 500, seed=r)
        values = np.exp(0.3 - 0.4 * np.log(depths)[:, None] + 0.2 * rng.normal(size=(8, 4)))
        fit = fit_grid(grid, values, (1, np.inf))
        hits += fit.slope_ci_low <= -0.4 <= fit.slope_ci_high
    assert 0.90 <= hits / 300 <= 0.99


def test_interval_coverage_on_weight_sequences():
    """The same for the RMS norm of i.i.d. 3×3 weights of size L^{-1/2} (exact slope −1/2), whose
    per-depth variances differ by a factor 30 (0.94 over 1000 replications)."""
    depths = [16, 32, 64, 128, 256, 512]
    rng = np.random.default_rng(5)
    hits, reps = 0, 200
    for r in range(reps):
        rows = []
        for L in depths:
            X = L**-0.5 * rng.normal(size=(4, L, 3, 3))
            rms = np.sqrt((X**2).sum(axis=(2, 3)).mean(axis=1))
            rows += [(L, s, v) for s, v in enumerate(rms)]
        table = pd.DataFrame(rows, columns=["depth", "seed", "value"])
        grid = SeedGrid.build(table, 400, seed=r)
        fit = fit_grid(grid, grid.values(table), (1, np.inf))
        hits += fit.slope_ci_low <= -0.5 <= fit.slope_ci_high
    assert 0.90 <= hits / reps <= 0.99


def test_excluded_networks_are_left_out_and_counted():
    stats = _statistics("brownian", status=["converged", "diverged", "stopped", "converged"])
    stats.loc[(stats["depth"] == 16) & (stats["seed"] == 3), "finite"] = False
    row = _row(fit_experiment(stats, SETTINGS, RegimeThresholds())[0], "M", "rms_norm")
    assert row["n_seeds"] == 3 and row["n_points"] == 3 * len(sp.DEPTHS) - 1
    assert row["n_excluded"] == len(sp.DEPTHS) + 1
    assert row["excluded"] == f"diverged:{len(sp.DEPTHS)}; non-finite:1"
    only_converged = FitSettings(min_depth=16, resamples=100, include_status=("converged",))
    row = _row(fit_experiment(stats, only_converged, RegimeThresholds())[0], "M", "rms_norm")
    assert row["n_seeds"] == 2 and row["n_excluded"] == 2 * len(sp.DEPTHS) + 1
    assert row["excluded"] == f"diverged:{len(sp.DEPTHS)}; non-finite:1; stopped:{len(sp.DEPTHS)}"


def test_fit_window_and_determinism():
    stats = _statistics("smooth", depths=sp.DEPTHS[:6])
    settings = FitSettings(min_depth=24, max_depth=86, min_depth_by_statistic={"cumulative_sum": 57}, resamples=200)
    table = fit_experiment(stats, settings, RegimeThresholds())[0]
    row = _row(table, "A", "max_norm")
    assert (row["min_depth"], row["max_depth"], row["n_depths"]) == (24, 86, 4)
    assert _row(table, "A", "cumulative_sum")["min_depth"] == 57
    again = fit_experiment(stats, settings, RegimeThresholds())[0]
    pd.testing.assert_frame_equal(table, again)


def test_single_seed_falls_back_to_the_ols_interval():
    table = fit_experiment(_statistics("brownian", seeds=1), SETTINGS, RegimeThresholds())[0]
    row = _row(table, "M", "rms_norm")
    assert row["ci_method"] == "ols-t" and row["ci_low"] < row["exponent"] < row["ci_high"]


def test_weighted_slopes_match_polyfit():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=(3, 20))
    w = (rng.uniform(size=(3, 20)) > 0.3).astype(float)
    slope, intercept = weighted_slopes(x, y, w)
    for i in range(3):
        keep = w[i] > 0
        expected = np.polyfit(x[keep], y[i, keep], 1)
        np.testing.assert_allclose([slope[i], intercept[i]], expected, rtol=1e-10)



def test_fit_all_tables_and_exponents_of():
    stats = [_statistics("smooth", name="smooth_exp"), _statistics("brownian", name="brownian_exp")]
    exponents, regimes = fit_all(stats, SETTINGS, RegimeThresholds())
    required = {"experiment", "dataset", "activation", "delta", "quantity", "statistic", "slope", "exponent",
                "ci_low", "ci_high", "n_depths", "n_seeds"}
    assert required <= set(exponents.columns)
    assert regimes.set_index("experiment")["regime"].to_dict() == {"smooth_exp": "ODE", "brownian_exp": "SDE"}
    betas = exponents_of(exponents, "smooth_exp")
    assert betas["A"] == pytest.approx(0.3, abs=0.01) and betas["M"] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="no 'rms_norm' rows"):
        exponents_of(exponents, "missing")


def _two_populations(converged_depths=sp.DEPTHS, stopped_depths=sp.DEPTHS) -> pd.DataFrame:
    """One experiment whose converged networks have Brownian weights (SDE, exponent 1/2) and
    whose networks stopped on the plateau have rough weights of size 1 (exponent 0)."""
    nets = []
    for L in sorted(set(converged_depths) | set(stopped_depths)):
        for kind, status, depths, first in (("brownian", "converged", converged_depths, 0),
                                            ("rough", "stopped", stopped_depths, 4)):
            if L in depths:
                w = sp.network(kind, L, 4, 10, status=[status] * 4, experiment="mixed")
                w.seeds = np.arange(first, first + 4)
                nets.append(w)
    labels = {"dataset": "toy", "dataset_kind": "synthetic", "activation": "relu", "delta": "none",
              "shuffle": "correct"}
    return experiment_statistics(nets, labels=labels)[0]


def test_two_populations_get_one_verdict_each():
    """The converged set is fitted alone and gives the verdict; the original rule's mixture is
    reported beside it with its own numbers."""
    table, regimes = fit_populations(_two_populations(), SETTINGS, RegimeThresholds())
    primary, original = regimes
    assert (primary["population"], primary["primary"], primary["original_rule"]) == ("converged", True, False)
    assert (original["population"], original["primary"], original["original_rule"]) == ("converged+stopped", False, True)
    assert primary["regime"] == "SDE" and primary["exponent"] == pytest.approx(0.5, abs=0.05)
    assert primary["members"] == f"converged:{4 * len(sp.DEPTHS)}"
    assert original["members"] == f"converged:{4 * len(sp.DEPTHS)}; stopped:{4 * len(sp.DEPTHS)}"
    # half the networks do not decay: the mixture's exponent lies between 0 and 1/2
    assert 0.05 < original["exponent"] < 0.45 and original["regime"] != "SDE"
    rows = table[(table["quantity"] == "M") & (table["statistic"] == "rms_norm")].set_index("population")
    assert rows.loc["converged", "exponent"] == pytest.approx(primary["exponent"])
    assert rows.loc["converged", "n_points"] == 4 * len(sp.DEPTHS)
    assert exponents_of(table, "mixed")["M"] == pytest.approx(primary["exponent"])  # readers take the primary


def test_one_set_of_networks_is_one_population_named_by_its_members():
    converged = fit_populations(_statistics("brownian"), SETTINGS, RegimeThresholds())[1]
    assert [(r["population"], r["primary"], r["original_rule"]) for r in converged] == [("converged", True, True)]
    stopped = fit_populations(_statistics("brownian", status=["stopped"] * 4), SETTINGS, RegimeThresholds())[1]
    assert [(r["population"], r["regime"]) for r in stopped] == [("converged+stopped", "SDE")]


def test_a_population_with_too_few_depths_gives_way_to_the_original_rule():
    """Converged networks at 2 depths only: they get no number, and the verdict is the original rule's."""
    table, regimes = fit_populations(_two_populations(converged_depths=sp.DEPTHS[:2]), SETTINGS, RegimeThresholds())
    by_name = {r["population"]: r for r in regimes}
    converged, original = by_name["converged"], by_name["converged+stopped"]
    assert converged["regime"] == "not evaluated" and not converged["primary"] and not converged["evaluated"]
    assert converged["population_note"] == "converged networks at 2 depths of the regime rule's fit window (at least 3 needed)"
    assert np.isnan(converged["exponent"]) and np.isnan(converged["support"])
    assert np.isnan(table.loc[table["population"] == "converged", "exponent"]).all()
    assert original["primary"] and np.isfinite(original["exponent"]) and regimes[0] is original


def test_an_experiment_without_enough_depths_is_not_evaluated(tmp_path):
    from resnet_scaling.io import write_csv
    from resnet_scaling.verdict.score import score
    from resnet_scaling.scaling.tables import read_exponents, read_regimes

    exponents, regimes = fit_all([_statistics("brownian", name="short", depths=sp.DEPTHS[:2])], SETTINGS,
                                 RegimeThresholds())
    row = regimes.iloc[0]
    assert row["regime"] == "not evaluated" and row["primary"]
    assert row["population_note"] == ("converged networks at 2 depths of the regime rule's fit window (at least 3 "
                                      "needed); no population of the experiment has enough depths")
    assert exponents["exponent"].isna().all() and exponents["ci_low"].isna().all()
    # the tables round-trip through their checked readers, blanks and all
    write_csv(tmp_path / "exponents.csv", exponents)
    write_csv(tmp_path / "regimes.csv", regimes)
    exponents, regimes = read_exponents(tmp_path / "exponents.csv"), read_regimes(tmp_path / "regimes.csv")
    regimes = regimes.assign(activation="relu", delta="multi")  # matched by the ReLU / per-layer δ references
    exponents = exponents.assign(quantity=exponents["quantity"].replace({"M": "M_abs"}))
    scores = score(exponents, regimes).set_index("reference")
    for reference in ("relu-multi-synthetic-beta", "relu-multi-regime"):
        assert scores.loc[reference, "ours"] == "n/a" and scores.loc[reference, "interval"] == "n/a"
        assert scores.loc[reference, "verdict"].startswith("not evaluated: converged networks at 2 depths")
        assert not scores.loc[reference, "agree"]




def test_a_gap_stops_the_population_fits_before_it():
    deep = max(sp.DEPTHS) * 16
    stats = _two_populations(converged_depths=[*sp.DEPTHS, deep])
    _, regimes = fit_populations(stats, SETTINGS, RegimeThresholds())
    primary = regimes[0]
    assert primary["population"] == "converged"
    assert primary["population_note"].startswith(f"fits stop at L = {max(sp.DEPTHS)}: beyond a gap to L = {deep}")
    assert primary["n_depths"] <= len(sp.DEPTHS)


def test_a_regime_with_a_wide_interval_is_undetermined():
    stats = _statistics("brownian")
    few = stats[stats["seed"] < 2]
    _, regimes = fit_populations(few, SETTINGS, RegimeThresholds(max_ci_width=1e-6))
    assert regimes[0]["regime"] == "undetermined"
    assert regimes[0]["undetermined_because"].startswith("the point estimates read SDE, but the exponent")


def test_seed_grid_draws_come_from_its_seed_depth_by_depth():
    """The bootstrap draws of SeedGrid.build are the generator of ``seed`` drawing, depth by depth
    in increasing depth, slots of that depth's seeds (sorted); rows in any order give the same grid."""
    import pandas as pd

    from resnet_scaling.scaling.exponents import SeedGrid

    networks = pd.DataFrame({"depth": [30, 10, 30, 10, 20, 30], "seed": [2, 5, 0, 1, 3, 1]})
    grid = SeedGrid.build(networks, 50, seed=123)
    assert grid.depths.tolist() == [10, 20, 30]
    assert [s.tolist() for s in grid.seeds] == [[1, 5], [3], [0, 1, 2]]
    rng = np.random.default_rng(123)
    for i, n in enumerate((2, 1, 3)):
        np.testing.assert_array_equal(grid.draws[:, i, :n], rng.integers(0, n, size=(50, n)))
    shuffled = SeedGrid.build(networks.sample(frac=1.0, random_state=0), 50, seed=123)
    np.testing.assert_array_equal(shuffled.draws, grid.draws)
    assert not np.array_equal(SeedGrid.build(networks, 50, seed=124).draws, grid.draws)
