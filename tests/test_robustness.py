"""Robustness of the exponents: sliding windows, inclusion rules, max/RMS, optimiser steps,
each checked on statistics with known exponents."""

import numpy as np
import pandas as pd
import pytest

from resnet_scaling.scaling.exponents import FitSettings
from resnet_scaling.scaling.robustness import experiment_robustness

DEPTHS = [8, 16, 32, 64, 128, 256, 512, 1024]


def _tables(beta_of_depth, steps_exponent=0.0, stopped_beta=None, seeds=4):
    """Statistics c·L^{-β(L)}·(1 + small noise) for quantity A; epochs ∝ L^{-steps_exponent}."""
    rng = np.random.default_rng(0)
    rows, train = [], []
    for L in DEPTHS:
        for s in range(seeds):
            status = "stopped" if (stopped_beta is not None and s == 0) else "converged"
            beta = stopped_beta if status == "stopped" else beta_of_depth(L)
            for statistic in ("max_norm", "rms_norm"):
                value = 2.0 * L ** -beta * np.exp(0.01 * rng.normal())
                rows.append({"experiment": "e", "depth": L, "seed": s, "status": status, "finite": True,
                             "quantity": "A", "statistic": statistic, "value": value})
            train.append({"experiment": "e", "depth": L, "seed": s, "status": status,
                          "epochs": 1000.0 * L ** -steps_exponent})
    return pd.DataFrame(rows), pd.DataFrame(train)


SETTINGS = FitSettings(min_depth=8, resamples=200, include_status=("converged", "stopped"))


def test_sliding_windows_recover_a_slope_that_changes_with_depth():
    # β = 0.45 up to L = 128, then 0.3: the local slope must show the flattening
    stats, train = _tables(lambda L: 0.45 if L <= 128 else 0.3)
    stats.loc[stats["depth"] > 128, "value"] *= 128 ** -0.45 / 128 ** -0.3  # continuous in L
    table = experiment_robustness(stats, train, 32, SETTINGS, window_depths=3)
    local = table[(table["analysis"] == "window") & (table["statistic"] == "rms_norm")].set_index("variant")
    assert local.loc["depths 8..32", "exponent"] == pytest.approx(0.45, abs=0.02)
    assert local.loc["depths 256..1024", "exponent"] == pytest.approx(0.3, abs=0.02)
    assert len(local) == len(DEPTHS) - 3 + 1


def test_inclusion_rules_select_the_networks():
    stats, train = _tables(lambda L: 0.5, stopped_beta=0.1)
    table = experiment_robustness(stats, train, 32, SETTINGS, window_depths=4)
    inclusion = table[(table["analysis"] == "inclusion") & (table["statistic"] == "max_norm")].set_index("variant")
    assert inclusion.loc["converged only", "exponent"] == pytest.approx(0.5, abs=0.02)
    assert inclusion.loc["converged only", "n_networks"] == 3 * len(DEPTHS)
    assert inclusion.loc["+ stopped on the plateau", "n_networks"] == 4 * len(DEPTHS)
    assert inclusion.loc["+ stopped on the plateau", "exponent"] < 0.45  # the stopped seed pulls it down


def test_step_counts_and_statistic_per_step():
    stats, train = _tables(lambda L: 0.5, steps_exponent=0.3)
    table = experiment_robustness(stats, train, 32, SETTINGS, window_depths=4)
    steps = table[table["analysis"] == "steps"].set_index(["quantity", "statistic"])
    assert steps.loc[("steps", "optimiser_steps"), "exponent"] == pytest.approx(0.3, abs=1e-6)
    # statistic / steps ∝ L^{-0.5} / L^{-0.3} = L^{-0.2}
    assert steps.loc[("A", "rms_norm"), "exponent"] == pytest.approx(0.2, abs=0.02)
    low, high = steps.loc[("A", "rms_norm"), ["ci_low", "ci_high"]]
    assert low <= steps.loc[("A", "rms_norm"), "exponent"] <= high


def test_sliding_windows_are_fitted_for_each_population():
    """Converged seeds decay like L^{-1/2}, one stopped seed per depth like L^{-0.1}: the converged
    population's windows recover 1/2 at every depth, the original rule's are pulled down."""
    stats, train = _tables(lambda L: 0.5, stopped_beta=0.1)
    table = experiment_robustness(stats, train, 32, SETTINGS, window_depths=4)
    local = table[(table["analysis"] == "window") & (table["statistic"] == "max_norm")]
    assert set(local["population"]) == {"converged", "converged+stopped"}
    converged = local[local["population"] == "converged"]
    assert len(converged) == len(DEPTHS) - 4 + 1
    np.testing.assert_allclose(converged["exponent"], 0.5, atol=0.03)
    assert (converged["n_networks"] == 4 * 3).all()
    assert (local.loc[local["population"] == "converged+stopped", "exponent"] < 0.45).all()
    # inclusion rows name the networks they hold; the steps rows are the original rule's
    inclusion = table[table["analysis"] == "inclusion"].drop_duplicates("variant").set_index("variant")["population"]
    assert inclusion["converged only"] == "converged" and inclusion["+ out of epochs"] == "converged+stopped+max_epochs"
