"""The regime rule of docs/maths.md §3 on slopes with known answers: its thresholds, how firm a
verdict is, and where a population's fits stop before a gap in its depths."""

import pytest

import scaling_problems as sp
from resnet_scaling.scaling.regime_rule import RegimeThresholds, classify, depth_gap_cut, threshold_sensitivity


def test_regime_rule_thresholds():
    th = RegimeThresholds()
    got = classify([-1.0, -0.5, -0.49, 0.1, 0.1, 0.1, 0.0], [1.0, 0.76, 1.0, 0.5, 0.5, 0.66, 0.0],
                   [-3.0, 0.0, 0.0, 0.1, 0.3, 0.0, 1.0], th)
    assert got.tolist() == ["ODE", "ODE", "neither", "SDE", "neither", "neither", "neither"]
    rough = classify([0.05, 0.05, 0.3], [1.0, 1.0, 1.0], [-1.0, -0.5, -1.0], th)
    assert rough.tolist() == ["ODE (rough weights)", "neither", "neither"]
    with pytest.raises(ValueError, match="unknown keys"):
        RegimeThresholds.from_config({"ode_exponent": 1.0, "typo": 1})


def test_a_verdict_near_an_edge_says_which_threshold_flips_it():
    th = RegimeThresholds()
    # ReLU digits at paper scale: quadratic-variation slope −0.63 against the rough-ODE edge −0.7
    assert classify(-0.03, 0.97, -0.63, th).item() == "neither"
    flips = threshold_sensitivity(-0.03, 0.97, -0.63, th)
    assert flips == "flips: ODE (rough weights) with rough_quadratic_variation_tol 0.4"
    assert threshold_sensitivity(-1.1, 0.97, -3.2, th).startswith("robust")


def test_a_verdict_is_not_carried_by_a_few_depths_across_a_gap():
    cut, note = depth_gap_cut([16, 32, 64, 128, 256, 492, 6319, 9100], 4.0, 3, "converged")
    assert cut == 492
    assert note == "fits stop at L = 492: beyond a gap to L = 6319 (x12.8) only 2 depths hold converged networks"
    assert depth_gap_cut([16, 32, 64, 128, 2048, 4096, 8192], 4.0, 3) == (None, "")  # enough depths beyond
    assert depth_gap_cut(sp.DEPTHS, 4.0, 3) == (None, "")
