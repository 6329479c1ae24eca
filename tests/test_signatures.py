"""Pathwise signatures on a network's own path (docs/maths.md §4): the coarsened network and its
adjoint against autograd in float64, and the quadratic variation and coarsening rates against
weight paths with known limits (ODE, SDE, rough 1/L weights, no limit)."""

import numpy as np
import pandas as pd
import pytest
import torch

from resnet_scaling.limits.signatures import (
    ADJOINT_COARSENING,
    ADJOINT_QV,
    COARSENING,
    HIDDEN_QV,
    INITIAL_QV,
    UPDATE_NORM,
    chunked_signatures,
    coarse_paths,
    fine_paths,
    network_signatures,
)
from resnet_scaling.limits.signature_fits import SignatureRule, signature_slopes, signature_verdict

DEPTHS = (16, 32, 64, 128, 256, 512, 1024)


def _inputs(seed=0, n=8, d=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True), rng.normal(size=(n, d))


def _coarse_autograd(A, b, delta, act, x, y, n_blocks):
    """The coarsened network written plainly, differentiated by autograd: (h_L, ∂loss/∂x)."""
    from resnet_scaling.limits.pathwise import block_edges

    A, b, delta = (torch.as_tensor(a, dtype=torch.float64) for a in (A, b, delta))
    x = torch.as_tensor(x, dtype=torch.float64).expand(A.shape[0], *x.shape).clone().requires_grad_(True)
    h = x
    edges = block_edges(A.shape[1], n_blocks)
    for e0, e1 in zip(edges[:-1], edges[1:]):
        step = 0
        for k in range(e0, e1):
            step = step + delta[:, k, None, None] * act(torch.einsum("pij,pnj->pni", A[:, k], h) + b[:, k, None, :])
        h = h + step
    loss = 0.5 * (h - torch.as_tensor(y, dtype=torch.float64)).pow(2).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return h.detach(), grad


@pytest.mark.parametrize("activation,fn", [("tanh", torch.tanh), ("relu", torch.relu)])
@pytest.mark.parametrize("n_blocks", [1, 3, 24])
def test_coarsened_network_and_its_adjoint_match_autograd_in_float64(activation, fn, n_blocks):
    rng = np.random.default_rng(1)
    P, L, d = 2, 24, 3
    A, b, delta = rng.normal(size=(P, L, d, d)) / 3, rng.normal(size=(P, L, d)) / 3, rng.uniform(0.02, 0.1, (P, L))
    x, y = _inputs()
    h, p = coarse_paths(A, b, delta, activation, x, y, n_blocks)
    h_ref, grad = _coarse_autograd(A, b, delta, fn, x, y, n_blocks)
    assert torch.allclose(h, h_ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(p, grad, rtol=1e-10, atol=1e-12)


def test_one_layer_per_block_is_the_fine_network_and_its_adjoint():
    rng = np.random.default_rng(2)
    P, L, d = 3, 40, 3
    A, b, delta = rng.normal(size=(P, L, d, d)) / 4, rng.normal(size=(P, L, d)) / 4, np.full((P, L), 1 / L)
    x, y = _inputs(2)
    fine = fine_paths(A, b, delta, "tanh", x, y)
    h, p = coarse_paths(A, b, delta, "tanh", x, y, L)
    assert torch.allclose(fine.h[-1], h, atol=1e-13) and torch.allclose(fine.p[0], p, atol=1e-13)
    # the fine adjoint is the gradient of ½ Σ |h_L − y|² with respect to the input
    _, grad = _coarse_autograd(A, b, delta, torch.tanh, x, y, L)
    assert torch.allclose(fine.p[0], grad, atol=1e-12)


def test_seeds_processed_in_chunks_give_the_same_rows():
    rng = np.random.default_rng(3)
    P, L, d = 5, 64, 3
    A, b, delta = rng.normal(size=(P, L, d, d)) / 8, rng.normal(size=(P, L, d)) / 8, np.full((P, L), 1 / L)
    init = (A * 0.5, b * 0.5, delta)
    x, y = _inputs(3)
    import resnet_scaling.limits.signatures as sig

    whole = pd.DataFrame(network_signatures(A, b, delta, "tanh", x, y, [2, 8], init))
    old = sig.MAX_CHUNK_ELEMENTS
    sig.MAX_CHUNK_ELEMENTS = 2 * L * len(x) * d  # two networks at a time
    try:
        chunked = pd.DataFrame(chunked_signatures(A, b, delta, "tanh", x, y, [2, 8], init))
    finally:
        sig.MAX_CHUNK_ELEMENTS = old
    key = ["i", "quantity", "n_blocks"]
    merged = whole.merge(chunked, on=key)
    assert len(merged) == len(whole) == len(chunked)
    np.testing.assert_allclose(merged.value_x, merged.value_y, rtol=1e-12)
    # the update of A/2 → A is half the weights' size: ‖δA − δA/2‖ = ‖δA‖/2
    upd = whole[whole.quantity == UPDATE_NORM].value.to_numpy()
    w = whole[whole.quantity == "weight_rms_norm"].value.to_numpy()
    np.testing.assert_allclose(upd, w / 2, rtol=1e-12)
    assert (whole.quantity == INITIAL_QV).sum() == P


def _weights(case, L, P, rng, Abar):
    d = Abar.shape[0]
    if case == "ode":  # §4(a): δ = 1/L, A_k = A(k/L) smooth
        t = np.arange(L) / L
        return (np.broadcast_to(Abar * np.cos(2 * t)[:, None, None], (P, L, d, d)).copy(), np.zeros((P, L, d)),
                np.full((P, L), 1 / L), "tanh")
    if case == "sde":  # §4(c): δ = 1, i.i.d. increments of size L^{-1/2}
        return (0.5 * rng.normal(size=(P, L, d, d)) / np.sqrt(L), 0.5 * rng.normal(size=(P, L, d)) / np.sqrt(L),
                np.ones((P, L)), "tanh")
    if case == "rough":  # §4(e): M_k = (Ā + Z_k)/L, ReLU
        return (Abar + rng.normal(size=(P, L, d, d)), 0.5 * rng.normal(size=(P, L, d)), np.full((P, L), 1 / L), "relu")
    # §4(d): ReLU with δ of fixed sign and increments of size L^{-1/2}: no limit
    return rng.normal(size=(P, L, d, d)) / np.sqrt(L), rng.normal(size=(P, L, d)) / np.sqrt(L), np.ones((P, L)), "relu"


def _signature_table(case, P=8, seed=0):
    rng = np.random.default_rng(seed)
    Abar = rng.normal(size=(3, 3))
    x, y = _inputs(seed)
    rows = []
    for L in DEPTHS:
        A, b, delta, act = _weights(case, L, P, rng, Abar)
        for r in network_signatures(A, b, delta, act, x, y, [4, 8, 16, 32]):
            rows.append({"depth": L, "seed": r.pop("i"), **r})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tables():
    return {case: _signature_table(case) for case in ("ode", "sde", "rough", "neither")}


def _slope(slopes, quantity, n_blocks=0, against="depth"):
    row = slopes[(slopes.quantity == quantity) & (slopes.n_blocks == n_blocks) & (slopes.against == against)]
    return float(row.slope.iloc[0])


@pytest.mark.parametrize("case,qv_slope,verdict", [("ode", -1.0, "ODE"), ("rough", -1.0, "ODE"), ("sde", 0.0, "SDE")])
def test_quadratic_variation_rates_and_verdicts_of_known_limits(tables, case, qv_slope, verdict):
    """docs/maths.md §4, §7: QV ∝ 1/L under an ODE limit (smooth or rough 1/L weights), flat under
    an SDE limit, within ±0.15; the coarsened error at fixed N does not grow with L."""
    slopes = signature_slopes(tables[case], min_depth=16, min_layers_per_block=16, resamples=300)
    assert abs(_slope(slopes, HIDDEN_QV) - qv_slope) <= 0.15
    assert abs(_slope(slopes, ADJOINT_QV) - qv_slope) <= 0.15
    for n in (4, 8):
        assert _slope(slopes, COARSENING, n) <= 0.15
        assert _slope(slopes, ADJOINT_COARSENING, n) <= 0.15
    assert signature_verdict(slopes, SignatureRule())["verdict"] == verdict
    assert signature_verdict(slopes, SignatureRule(), "backward")["verdict"] == verdict


def test_coarsening_rate_in_blocks_is_first_order_for_a_smooth_ode_and_at_least_half_for_an_sde(tables):
    """Freezing h inside a block is a first-order scheme: N^{-1} on a smooth ODE path; between
    N^{-1/2} and N^{-1} on a diffusive one (docs/maths.md §4)."""
    ode = signature_slopes(tables["ode"], min_depth=16, min_layers_per_block=16, resamples=100)
    sde = signature_slopes(tables["sde"], min_depth=16, min_layers_per_block=16, resamples=100)
    assert abs(_slope(ode, COARSENING + "_rate_in_blocks", against="blocks") + 1.0) <= 0.15
    assert -1.15 <= _slope(sde, COARSENING + "_rate_in_blocks", against="blocks") <= -0.35


def test_a_network_without_a_limit_is_neither(tables):
    slopes = signature_slopes(tables["neither"], min_depth=16, min_layers_per_block=16, resamples=300)
    assert _slope(slopes, HIDDEN_QV) > 1.0
    v = signature_verdict(slopes, SignatureRule())
    assert v["verdict"] == "neither" and "grows with depth" in v["reason"]


def test_too_few_depths_or_networks_are_not_evaluated_with_the_reason(tables):
    few = tables["ode"][tables["ode"].depth.isin([512, 1024])]
    v = signature_verdict(signature_slopes(few, min_depth=16, min_layers_per_block=16, resamples=50), SignatureRule())
    assert v["verdict"] == "not evaluated" and "needs at least 4 depths" in v["reason"]
    assert "quadratic_variation_slope" not in v
    one = tables["sde"][tables["sde"].seed == 0]
    v = signature_verdict(signature_slopes(one, min_depth=16, min_layers_per_block=16, resamples=50),
                          SignatureRule(min_networks=10))
    assert v["verdict"] == "not evaluated" and "7 networks" in v["reason"]
    assert signature_verdict(pd.DataFrame(), SignatureRule())["verdict"] == "not evaluated"


def _slopes(qv, coarse):
    """A slopes table with the given (slope, low, high) of QV and of the coarsened error at N = 8."""
    rows = [{"quantity": HIDDEN_QV, "n_blocks": 0}, {"quantity": COARSENING, "n_blocks": 8}]
    for row, (s, lo, hi) in zip(rows, (qv, coarse)):
        row.update(against="depth", slope=s, ci_low=lo, ci_high=hi, n_depths=8, n_networks=32)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("qv,coarse,verdict", [
    ((-0.45, -0.5, -0.41), (0.0, -0.1, 0.1), "ODE"),          # QV falls slower than 1/L: still vanishes
    ((0.05, -0.1, 0.15), (0.0, -0.1, 0.1), "SDE"),
    ((0.05, -0.1, 0.15), (0.5, 0.3, 0.7), "neither"),          # the coarsened error grows with L
    ((-0.1, -0.3, 0.1), (0.0, -0.1, 0.1), "undetermined"),     # QV across the edge −0.2
    ((-0.5, -1.2, 0.2), (0.0, -0.1, 0.1), "undetermined"),     # interval wider than 0.6
    ((-1.0, -1.1, -0.9), (0.0, -0.5, 0.5), "undetermined"),    # coarsened-error interval wider than 0.6
    ((-1.0, -1.1, -0.9), (0.15, 0.05, 0.25), "ODE"),           # growth not excluded, and said so
])
def test_verdict_rule(qv, coarse, verdict):
    v = signature_verdict(_slopes(qv, coarse), SignatureRule())
    assert v["verdict"] == verdict
    if qv[0] == -0.45:
        assert "slower than 1/L" in v["reason"]
    if coarse[2] == 0.25:
        assert "its interval reaches +0.25" in v["reason"]


def test_a_verdict_near_an_edge_says_where_it_flips():
    v = signature_verdict(_slopes((-0.3, -0.38, -0.25), (0.0, -0.1, 0.1)), SignatureRule())
    assert v["verdict"] == "ODE"
    assert v["sensitivity"] == "flips: undetermined with flat_tol 0.3"
    robust = signature_verdict(_slopes((-1.0, -1.05, -0.95), (0.0, -0.05, 0.05)), SignatureRule())
    assert robust["sensitivity"].startswith("robust")
