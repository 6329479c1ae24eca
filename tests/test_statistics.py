"""Statistics of layer sequences against exact values and the slopes of docs/maths.md §3."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scaling_problems as sp
from resnet_scaling.scaling.statistics import (
    STATISTICS,
    detrend_window,
    expected_slope,
    moving_average,
    network_statistics,
    sequence_statistics,
)

TABLE = ("max_norm", "rms_norm", "root_sum_squares", "max_increment", "increment_ratio", "quadratic_variation")


def test_constant_sequence_exact_values():
    L, C = 20, np.array([[3.0, 0.0], [0.0, 4.0]])  # ‖C‖ = 5
    X = np.broadcast_to(C, (2, L, 2, 2)).copy()
    s = sequence_statistics(X)
    np.testing.assert_allclose(s["max_norm"], 5.0)
    np.testing.assert_allclose(s["rms_norm"], 5.0)
    np.testing.assert_allclose(s["root_sum_squares"], 5.0 * np.sqrt(L))
    np.testing.assert_allclose(s["max_increment"], 0.0)
    np.testing.assert_allclose(s["increment_ratio"], 0.0)
    np.testing.assert_allclose(s["quadratic_variation"], 0.0)
    np.testing.assert_allclose(s["cumulative_sum"], 5.0 * L)
    # the path of a constant sequence is linear: its centred moving average is itself
    np.testing.assert_allclose(s["detrended_cumsum"], 0.0, atol=1e-12)


def test_alternating_sequence_exact_values():
    L = 9
    signs = (-1.0) ** np.arange(L)
    X = (signs[:, None] * np.array([1.0, 2.0, 2.0]))[None]  # ‖X_k‖ = 3
    s = sequence_statistics(X)
    np.testing.assert_allclose(s["max_increment"], 6.0)
    np.testing.assert_allclose(s["increment_ratio"], 2.0)
    np.testing.assert_allclose(s["quadratic_variation"], 36.0 * (L - 1))
    np.testing.assert_allclose(s["cumulative_sum"], 3.0)  # odd L: one term left over


def _detrended_naive(x: np.ndarray, fraction: float) -> float:
    """The definition written out: max over k of |W_k − mean(W_{k−h..k+h})|, h = min(w, k, L−k)."""
    L = len(x)
    W = np.concatenate([[0.0], np.cumsum(x)])
    w = detrend_window(L, fraction)
    best = 0.0
    for k in range(L + 1):
        h = min(w, k, L - k)
        best = max(best, abs(W[k] - W[k - h : k + h + 1].mean()))
    return best


@pytest.mark.parametrize("L", [2, 3, 7, 10, 41, 200])
@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_detrended_cumsum_matches_definition(L, fraction):
    x = np.random.default_rng(L).normal(size=L)
    got = sequence_statistics(x[None, :], fraction, ["detrended_cumsum"])["detrended_cumsum"][0]
    assert got == pytest.approx(_detrended_naive(x, fraction), rel=1e-12, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), window=st.integers(1, 30), slope=st.floats(-5, 5), icpt=st.floats(-5, 5))
def test_moving_average_keeps_lines(n, window, slope, icpt):
    W = (icpt + slope * np.arange(n))[None, :, None]
    np.testing.assert_allclose(moving_average(W, window), W, atol=1e-9 * (1 + abs(slope) * n + abs(icpt)))


@settings(max_examples=20, deadline=None)
@given(c=st.floats(0.01, 100.0), seed=st.integers(0, 1000))
def test_statistics_scale_with_the_weights(c, seed):
    X = np.random.default_rng(seed).normal(size=(2, 12, 3, 3))
    base, scaled = sequence_statistics(X), sequence_statistics(-c * X)
    for name in STATISTICS:
        power = {"increment_ratio": 0, "quadratic_variation": 2}.get(name, 1)
        np.testing.assert_allclose(scaled[name], c**power * base[name], rtol=1e-9)


def _slopes(kind: str, depths, beta: float = 0.3) -> dict[str, float]:
    logs = {s: [] for s in STATISTICS}
    for L in depths:
        A = sp.sequences(kind, L, beta=beta)[0]
        for name, value in sequence_statistics(A).items():
            logs[name].append(np.log(value).mean())
    return {s: np.polyfit(np.log(depths), logs[s], 1)[0] for s in STATISTICS}


@pytest.mark.parametrize("beta", [0.2, 0.5, 0.8])
def test_smooth_weights_have_the_H1_slopes(beta):
    """H1 (X_k = L^{-β} f(k/L), 10×10): the §3 table within 0.025 (docs/maths.md §7), the cumulative
    sum (slope 1 − β) too; the detrended cumulative sum only from L ≥ 128 and within 0.05, because
    its window rounds to whole layers (that is why its fit window starts higher)."""
    got = _slopes("smooth", sp.DEPTHS[2:], beta)
    for name in (*TABLE, "cumulative_sum"):
        assert got[name] == pytest.approx(expected_slope(name, "H1", beta), abs=0.025), name
    deep = _slopes("smooth", [d for d in sp.DEPTHS if d >= 128], beta)
    assert deep["detrended_cumsum"] == pytest.approx(1 - beta, abs=0.05)


def test_brownian_weights_have_the_H2_slopes():
    """H2 (i.i.d. 10×10 weights of size L^{-1/2}): every statistic within 0.05 (docs/maths.md §7:
    the max statistics of matrices carry only a +0.02 log bias)."""
    got = _slopes("brownian", sp.DEPTHS)
    for name in STATISTICS:
        assert got[name] == pytest.approx(expected_slope(name, "H2"), abs=0.05), name


def test_expected_slopes_are_those_of_the_table():
    assert expected_slope("increment_ratio", "H1", 0.3) == -1.0
    assert expected_slope("root_sum_squares", "H1", 0.3) == pytest.approx(0.2)
    assert expected_slope("quadratic_variation", "H1", 0.25) == pytest.approx(-1.5)
    assert expected_slope("max_norm", "H2") == -0.5
    with pytest.raises(ValueError, match="hypothesis"):
        expected_slope("max_norm", "H3")


def test_network_statistics_quantities_per_delta_type():
    shared = sp.network("smooth", 16)
    table = network_statistics(shared, labels={"dataset": "toy"})
    assert set(table["quantity"]) == {"A", "b", "delta", "M", "m"}
    delta_stats = set(table.loc[table["quantity"] == "delta", "statistic"])
    assert not delta_stats & {"max_increment", "increment_ratio", "quadratic_variation"}
    assert len(table) == 4 * (4 * len(STATISTICS) + len(STATISTICS) - 3)
    assert (table["dataset"] == "toy").all() and list(table.columns[:3]) == ["experiment", "dataset", "depth"]

    multi = sp.network("brownian", 16)
    multi.delta_type = "multi"
    table = network_statistics(multi)
    assert set(table["quantity"]) == {"A", "b", "delta", "M", "m", "M_abs", "m_abs"}
    assert "quadratic_variation" in set(table.loc[table["quantity"] == "delta", "statistic"])

    none = sp.network("brownian", 16)
    assert "delta" not in set(network_statistics(none)["quantity"])


def test_nonfinite_networks_are_flagged():
    w = sp.network("brownian", 16, status=["converged", "diverged", "converged", "stopped"])
    w.A[2, 3, 0, 0] = np.nan
    table = network_statistics(w)
    flags = table.drop_duplicates("seed").set_index("seed")["finite"]
    assert flags.tolist() == [True, True, False, True]
