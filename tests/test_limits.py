"""Limits of the hidden state (docs/maths.md §4): solvers against known rates and exact laws.

Rates are asserted within ±0.15 of docs/maths.md §7 on log-log fits over L = 16…1024 (nested
grids, fixed seeds, float64); laws with a Kolmogorov–Smirnov test whose power is checked
on a wrong law. The fitting of trained networks runs on synthetic stand-in training files.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from problems import slope
from resnet_scaling import limits as lm
from resnet_scaling import sde
from resnet_scaling.training.activations import get_activation
from resnet_scaling.distances import ks_min_pvalue
from resnet_scaling.io import write_npz
from resnet_scaling.training.resnet import ResNetEnsemble

TOL = 0.15
DEPTHS = [16, 32, 64, 128, 256, 512, 1024]




# ----------------------------------------------------------------------------------------
# the discrete network and the synthetic weights
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["tanh", "relu", "softplus0"])
def test_network_states_equal_resnet_trajectory(act):
    """An independent implementation (ResNetEnsemble, layer-major) gives the same states."""
    wp = lm.synthetic_weight_paths("generic", 12, 3, 4, 0)
    x = lm.unit_inputs(5, 4, 0)
    h = lm.network_states(wp.A, wp.b, wp.delta, act, x)
    net = ResNetEnsemble.from_numpy(wp.A.numpy(), wp.b.numpy(), wp.delta.numpy(), "multi", act)
    torch.testing.assert_close(h, net.trajectory(x).h, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_network_outputs_are_the_last_state_and_the_engine_output(act):
    """The streamed outputs (no states held) equal the last state and the engine's forward pass,
    for inputs shared by the networks and for inputs per network."""
    wp = lm.synthetic_weight_paths("generic", 12, 3, 4, 1)
    net = ResNetEnsemble.from_numpy(wp.A.numpy(), wp.b.numpy(), wp.delta.numpy(), "multi", act)
    for x in (lm.unit_inputs(5, 4, 1), torch.randn(3, 5, 4, dtype=torch.float64)):
        out = lm.network_outputs(wp.A, wp.b, wp.delta, act, x)
        assert out.shape == (3, 5, 4)
        torch.testing.assert_close(out, lm.network_states(wp.A, wp.b, wp.delta, act, x)[-1], rtol=0, atol=0)
        torch.testing.assert_close(out, net.forward(x), rtol=1e-12, atol=1e-13)


def test_synthetic_weights_are_deterministic_and_nested():
    a = lm.synthetic_weight_paths("diffusive", 16, 4, 3, 7, n_fine=256)
    b = lm.synthetic_weight_paths("diffusive", 32, 4, 3, 7, n_fine=256)
    assert torch.equal(a.dWA_fine, b.dWA_fine) and torch.equal(a.dWb_fine, b.dWb_fine)
    # one fine path: the weights of depth 16 are pairwise sums of those of depth 32
    torch.testing.assert_close(a.A, b.A[:, 0::2] + b.A[:, 1::2], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a.b, b.b[:, 0::2] + b.b[:, 1::2], rtol=1e-12, atol=1e-14)
    c = lm.synthetic_weight_paths("diffusive", 16, 4, 3, 8, n_fine=256)
    assert not torch.equal(a.A, c.A)
    for case in ("neural_ode", "linear_ode", "generic"):
        u, v = (lm.synthetic_weight_paths(case, 20, 3, 3, 1) for _ in range(2))
        assert torch.equal(u.A, v.A) and torch.equal(u.b, v.b) and torch.equal(u.delta, v.delta)


def test_synthetic_scalings():
    L, beta = 64, 0.25
    wp = lm.synthetic_weight_paths("linear_ode", L, 2, 3, 0, beta=beta)
    torch.testing.assert_close(wp.A[:, 5] * L**beta, wp.limit_A(5 / L))
    torch.testing.assert_close(wp.delta, torch.full((L,), L ** (beta - 1), dtype=torch.float64))
    wp = lm.synthetic_weight_paths("neural_ode", L, 2, 3, 0)
    torch.testing.assert_close(wp.A[:, 7], wp.limit_A(7 / L))
    # the diffusive increments have the law's covariance per unit time
    wp = lm.synthetic_weight_paths("diffusive", 8, 64, 3, 0, n_fine=1024)
    resid = wp.dWA_fine - wp.dWA_fine.mean(dim=(0, 1))
    var_rate = resid.pow(2).mean() * 1024
    assert abs(var_rate / wp.law.noise_A[0, 0] ** 2 - 1) < 0.02
    with pytest.raises(ValueError, match="unknown synthetic case"):
        lm.synthetic_weight_paths("sde", 8, 1, 3, 0)


# ----------------------------------------------------------------------------------------
# ODE limits: §4(a), §4(b)
# ----------------------------------------------------------------------------------------
def test_neural_ode_rate():
    rows = pd.DataFrame(lm.ode_convergence("neural_ode", DEPTHS, "tanh", n_paths=8, n_inputs=4))
    assert abs(slope(rows.L, rows.error) - lm.RATE_NEURAL_ODE) < TOL


@pytest.mark.parametrize("act,beta", [("softplus0", 0.25), ("softplus0", 0.5), ("tanh", 0.5)])
def test_linear_ode_rates(act, beta):
    rows = pd.DataFrame(lm.ode_convergence("linear_ode", DEPTHS, act, beta=beta, n_paths=8, n_inputs=4))
    expected = lm.rate_linear_ode(beta, get_activation(act).curvature_at_0)
    assert expected == (-beta if act == "softplus0" else -1.0)
    assert abs(slope(rows.L, rows.error) - expected) < TOL


def test_rk4_is_fourth_order():
    """The ODE solver itself: error of RK4 against a far finer RK4 falls like n^{-4}."""
    wp = lm.synthetic_weight_paths("neural_ode", 8, 4, 3, 0)
    x = lm.unit_inputs(3, 3, 0)
    ref = sde.solve_neural_ode(wp.limit_A, wp.limit_b, x, "tanh", 1024)[-1]
    ns = [16, 32, 64, 128]
    errs = [(sde.solve_neural_ode(wp.limit_A, wp.limit_b, x, "tanh", n)[-1] - ref).abs().max() for n in ns]
    assert abs(slope(ns, errs) + 4) < 0.3


def test_per_step_coefficients_and_linear_ode_exact():
    """Constant Ā: the linear ODE is a matrix exponential; PerStep and callables agree."""
    d = 3
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(d, d, generator=gen, dtype=torch.float64) / d
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    x = lm.unit_inputs(2, d, 0)
    H = sde.solve_linear_ode(A, b, x, 64, gain=0.5)[-1, 0]
    # exact: H_1 = e^{gA} x + (e^{gA} − I) A^{-1} b for g = 1/2
    E = torch.linalg.matrix_exp(0.5 * A)
    exact = x @ E.T + ((E - torch.eye(d, dtype=torch.float64)) @ torch.linalg.solve(A, b))
    torch.testing.assert_close(H, exact, rtol=1e-9, atol=1e-10)
    H2 = sde.solve_linear_ode(sde.PerStep(A.expand(64, d, d)), sde.PerStep(b.expand(64, d)), x, 64, gain=0.5)[-1, 0]
    torch.testing.assert_close(H, H2, rtol=1e-13, atol=1e-14)


# ----------------------------------------------------------------------------------------
# the diffusive limit: §4(c)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diffusive_rows() -> pd.DataFrame:
    return pd.DataFrame(lm.diffusive_convergence(DEPTHS, "softplus0", n_paths=200, dim=3, seed=0, refine=16))


@pytest.mark.slow
@pytest.mark.parametrize("statistic", ["error", "error_median"])
def test_diffusive_rate_with_ito_term(diffusive_rows, statistic):
    g = diffusive_rows[diffusive_rows.with_ito_term == True]  # noqa: E712
    assert abs(slope(g.L, g[statistic]) - lm.RATE_DIFFUSIVE) < TOL


def test_diffusive_plateau_without_ito_term(diffusive_rows):
    g = diffusive_rows[diffusive_rows.with_ito_term == False].sort_values("L")  # noqa: E712
    w = diffusive_rows[diffusive_rows.with_ito_term == True].sort_values("L")  # noqa: E712
    assert abs(slope(g.L, g.error)) < TOL
    assert abs(slope(g.L, g.error_median)) < TOL
    # of order one: far above the error with the term at the largest depth
    assert g.error.iloc[-1] > 5 * w.error.iloc[-1]


def test_streamed_reference_equals_materialised():
    """diffusive_convergence streams the fine path; the same path materialised gives the same errors."""
    depths, P, refine = [4, 8], 6, 16
    rows = pd.DataFrame(lm.diffusive_convergence(depths, n_paths=P, refine=refine, seed=3))
    wp = lm.synthetic_weight_paths("diffusive", 8, P, 3, 3, n_fine=refine * 8)
    x = lm.unit_inputs(1, 3, 3)
    C = wp.law.row_cov(0.0)
    for flag in (True, False):
        ref = sde.solve_ito_sde(wp.dWA_fine, wp.dWb_fine, x, "softplus0", flag, row_cov=C)
        for L in depths:
            h = lm.network_states(lm.block_sums(wp.dWA_fine, L), lm.block_sums(wp.dWb_fine, L), 1.0, "softplus0", x)
            e = (h - ref[:: refine * 8 // L]).norm(dim=-1).amax(0).flatten()
            got = rows[(rows.L == L) & (rows.with_ito_term == flag)].error.item()
            assert got == pytest.approx(float(e.pow(2).mean().sqrt()), rel=1e-10)


def test_realised_square_scheme_equals_network_to_first_order():
    """Driven by the network's own increments the scheme H + σ'(0)ΔX + ½σ''(0)ΔX² differs from
    the network by the cubic Taylor remainder: O(1/L) (docs/maths.md §4(c))."""
    P, d = 50, 3
    wp = lm.synthetic_weight_paths("diffusive", 8, P, d, 1, n_fine=1024)
    x = lm.unit_inputs(1, d, 1)
    Ls = [16, 64, 256, 1024]
    errs = []
    for L in Ls:
        A, b = lm.block_sums(wp.dWA_fine, L), lm.block_sums(wp.dWb_fine, L)
        h = lm.network_states(A, b, 1.0, "softplus0", x)
        H = sde.solve_ito_sde(A, b, x, "softplus0", True)
        errs.append(float((h - H).norm(dim=-1).amax(0).pow(2).mean().sqrt()))
    assert abs(slope(Ls, errs) + 1) < TOL


def test_ito_q_forms_agree():
    gen = torch.Generator().manual_seed(0)
    d, P = 4, 3
    h = torch.randn(P, 5, d, generator=gen, dtype=torch.float64)
    F = torch.randn(d, d + 1, d + 1, generator=gen, dtype=torch.float64)
    C = F @ F.transpose(1, 2)
    u = torch.cat([h, torch.ones(P, 5, 1, dtype=torch.float64)], -1)
    direct = torch.einsum("pnj,ijk,pnk->pni", u, C, u)
    torch.testing.assert_close(sde.ito_q(h, C), direct)
    torch.testing.assert_close(sde.ito_q(h, C.expand(P, *C.shape)), direct)
    D = torch.diag_embed(torch.rand(d, d + 1, generator=gen, dtype=torch.float64))
    assert sde.compact_row_cov(D).shape == (d, d + 1) and sde.compact_row_cov(C) is C
    torch.testing.assert_close(sde.ito_q(h, sde.compact_row_cov(D)), sde.ito_q(h, D))


def test_solve_ito_sde_equals_torchsde_on_same_increments():
    P, N, d, n = 3, 2, 3, 40
    law = lm.diffusive_law(d, 0, **lm.SYNTHETIC_DEFAULTS["diffusive"])
    dB = torch.randn(P, n, d * d + d, generator=torch.Generator().manual_seed(5), dtype=torch.float64) / math.sqrt(n)
    x = lm.unit_inputs(N, d, 0)
    dWA, dWb = sde.gaussian_increments(law, dB, torch.linspace(0, 1, n + 1, dtype=torch.float64))
    for flag in (True, False):
        ours = sde.solve_ito_sde(dWA, dWb, x, "softplus0", flag, row_cov=law.row_cov(0.0))
        theirs = sde.torchsde_ito_solve(law, dB, x, "softplus0", flag, out_times=[0.0, 0.5, 1.0])
        torch.testing.assert_close(ours[[0, n // 2, n]], theirs, rtol=1e-12, atol=1e-12)


class _RecordingLaw(sde.GaussianWeightPathLaw):
    """A Gaussian law that remembers the increments it hands out."""

    def increments(self, t0, t1, n_paths, gen):
        out = super().increments(t0, t1, n_paths, gen)
        self.seen.append(out)
        return out


def test_generative_and_pathwise_solvers_take_the_same_steps():
    law = lm.diffusive_law(3, 0, **lm.SYNTHETIC_DEFAULTS["diffusive"])
    rec = _RecordingLaw(law.drift_A, law.drift_b, law.noise_A, law.noise_b)
    rec.seen = []
    x = lm.unit_inputs(2, 3, 0)
    H = sde.sample_ito_sde(rec, x, "softplus0", 32, 5, seed=11)
    dWA = torch.stack([a for a, _ in rec.seen], 1)
    dWb = torch.stack([b for _, b in rec.seen], 1)
    torch.testing.assert_close(H, sde.solve_ito_sde(dWA, dWb, x, "softplus0", True, row_cov=law.row_cov(0.0)))
    torch.testing.assert_close(H, sde.sample_ito_sde(law, x, "softplus0", 32, 5, seed=11))  # seeded


def test_generative_sde_has_the_exact_law():
    """d = 1, identity σ: dH = H dW^A with W^A = a t + s B is geometric Brownian motion,
    log H_1 ~ N(log x + a − s²/2, s²)."""
    a, s, n, P = 0.3, 0.8, 400, 4000
    law = sde.GaussianWeightPathLaw(
        lambda t: torch.tensor([[a]], dtype=torch.float64), lambda t: torch.zeros(1, dtype=torch.float64),
        torch.tensor([[s]], dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
    )
    H = sde.sample_ito_sde(law, torch.ones(1, 1, dtype=torch.float64), "identity", n, P, seed=3, record_every=n)[-1]
    logs = torch.log(H.flatten()).numpy()
    assert stats.kstest(logs, "norm", args=(a - s * s / 2, s)).pvalue > 1e-3
    # power: the Stratonovich answer (no −s²/2) is rejected
    assert stats.kstest(logs, "norm", args=(a, s)).pvalue < 1e-3


# ----------------------------------------------------------------------------------------
# the generic (moment-matched) diffusion: §4(d)
# ----------------------------------------------------------------------------------------
def test_relu_gaussian_moments():
    gen = torch.Generator().manual_seed(0)
    m = torch.tensor([-1.0, 0.0, 0.7], dtype=torch.float64)
    v = torch.tensor([0.5, 2.0, 0.1], dtype=torch.float64)
    z = m + v.sqrt() * torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    e1, e2 = sde.relu_gaussian_moments(m, v)
    r = torch.relu(z)
    torch.testing.assert_close(e1, r.mean(0), rtol=0.01, atol=2e-3)
    torch.testing.assert_close(e2, r.pow(2).mean(0), rtol=0.01, atol=2e-3)


def test_moment_matched_increment_has_window_moments():
    """With all window layers, the increment's mean and covariance are L·mean·dt and L·cov·dt."""
    wp = lm.synthetic_weight_paths("generic", 64, 3, 2, 0)
    mm = sde.MomentMatchedDiffusion(wp.A, wp.b, wp.delta, "relu", 0.2)
    h = lm.unit_inputs(1, 2, 0).expand(20000, 1, 2).clone()
    t, dt = 0.4, 0.01
    inc = mm.increment(t, dt, h, torch.Generator().manual_seed(0))[:, 0]
    idx, w = mm.window(t)
    r = mm.delta[idx, None] * torch.relu(mm.A[idx] @ h[0, 0] + mm.b[idx])
    mean = (w[:, None] * r).sum(0)
    cov = ((r - mean).T * w) @ (r - mean)
    torch.testing.assert_close(inc.mean(0), 64 * dt * mean, rtol=0, atol=4 * float((64 * dt * cov.diag() / 20000).sqrt().max()))
    torch.testing.assert_close(torch.cov(inc.T), 64 * dt * cov, rtol=0.05, atol=1e-6)


@pytest.mark.slow
def test_generic_diffusion_in_law():
    """Random-sign ReLU networks and the moment-matched diffusion estimated from them agree in
    law with a fine-grid solution of the exact diffusion; a wrong law (no drift) is rejected."""
    rows = pd.DataFrame(lm.generic_convergence(
        [32, 256], n_paths=800, reference_paths=3000, reference_steps=256, steps=128, max_layers=64,
    ))
    floor = rows[rows.case == "generic_floor"].error.max()
    for case in ("generic_network", "generic_moment_matched"):
        g = rows[(rows.case == case) & (rows.L == 256)]
        assert g.ks_pvalue.item() > 1e-3, case
        assert g.error.item() < 2.5 * floor, case
    wp = lm.synthetic_weight_paths("generic", 1, 1, 3, 0)
    x = lm.unit_inputs(1, 3, 0)
    ref = sde.sample_diffusion(wp.law, x, 256, 3000, 1, record_every=256)[-1, :, 0]
    wrong = sde.RandomSignReluLaw(wp.law.A_bar, wp.law.b_bar, 0.0, wp.law.s_delta, wp.law.tau_A, wp.law.tau_b)
    bad = sde.sample_diffusion(wrong, x, 256, 800, 2, record_every=256)[-1, :, 0]
    assert ks_min_pvalue(bad, ref) < 1e-3


# ----------------------------------------------------------------------------------------
# fitting trained networks: synthetic stand-ins for the training outputs
# ----------------------------------------------------------------------------------------
FIT_CFG = dict(bandwidth=0.1, n_grid=20, steps=64, draws=3, n_inputs=24, n_pathwise_inputs=8,
               pathwise_steps=[8, 32], max_layers=32, n_trajectories=2)


def _standin(tmp_path, name, wp, activation, delta_type, dim, status=None):
    """A training output ``results/train/{exp}/depth_{L}.npz`` holding synthetic weights."""
    S, L = wp.A.shape[:2]
    delta = wp.delta.expand(S, L) if wp.delta.dim() == 1 else wp.delta
    path = tmp_path / "train" / name / f"depth_{L}.npz"
    write_npz(
        path,
        metadata={"experiment": name, "depth": L, "dataset": "standin",
                  "config": {"activation": activation, "delta": delta_type, "dataset": "standin"}},
        A=wp.A.numpy(), b=wp.b.numpy(), delta=delta.numpy(), seeds=np.arange(S),
        status=np.array(status or ["converged"] * S), epochs=np.ones(S, int),
        train_loss=np.full((S, 1), 0.1), test_loss=np.full((S, 1), 0.1),
    )
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = 3
    path = tmp_path_factory.mktemp("data") / "standin.npz"
    x = lm.unit_inputs(40, d, 5).numpy()
    write_npz(path, x_train=x, y_train=x, x_test=x, y_test=np.roll(x, 1, axis=1))
    return path


def test_choose_limit_follows_the_regime():
    assert lm.choose_limit("ODE", "tanh", "shared", 0.3) == "linear_ode"
    assert lm.choose_limit("ODE", "tanh", "shared", 0.0) == "neural_ode"
    assert lm.choose_limit("ODE", "relu", "multi", 0.5) == "neural_ode"  # the ReLU ODE
    assert lm.choose_limit("SDE", "softplus0", "none", 0.5) == "ito_sde"
    # δ = L^-1/2 with O(1) weights (β ≈ 0): σ is not linearised, the diffusion of §4(g)
    assert lm.choose_limit("SDE", "tanh", "fixed", 0.01) == "moment_matched"
    assert lm.choose_limit("SDE", "relu", "multi", 0.5) == "moment_matched"
    assert lm.choose_limit("neither", "tanh", "shared", 0.2) == "moment_matched"
    assert lm.normalise_regime("sde") == "SDE" and lm.normalise_regime("?") == "undetermined"


def _regimes_table(experiment: str, regime: str) -> pd.DataFrame:
    """A one-row regimes.csv with every column the checked reader requires."""
    return pd.DataFrame({"experiment": [experiment], "regime": [regime], "exponent": [0.5],
                         "increment_ratio_slope": [0.0], "quadratic_variation_slope": [0.0], "n_depths": [5],
                         "n_seeds": [2], "n_usable": [10], "n_excluded": [0]})


def test_regime_and_beta_files(tmp_path):
    from resnet_scaling.scaling.tables import expected_pairs

    regimes = tmp_path / "regimes.csv"
    _regimes_table("a", "SDE").to_csv(regimes, index=False)
    assert lm.read_regime(regimes, "a") == "SDE"
    with pytest.raises(ValueError, match=r"has no regime for experiment 'b'; delete .*regimes.csv and rerun"):
        lm.read_regime(regimes, "b")
    exps = tmp_path / "exponents.csv"
    rows = [{"experiment": "a", "delta": "shared", "quantity": q, "statistic": s, "slope": -1.0, "exponent": 1.0,
             "ci_low": 0.9, "ci_high": 1.1, "n_depths": 5, "n_seeds": 2, "n_excluded": 0}
            for q, s in sorted(expected_pairs("shared"))]
    table = pd.DataFrame(rows)
    table.loc[(table["quantity"] == "A") & (table["statistic"] == "rms_norm"), "exponent"] = 0.3
    table.to_csv(exps, index=False)
    assert lm.read_beta(exps, "a") == 0.3 and math.isnan(lm.read_beta(exps, "b"))


def test_kernel_estimates_recover_known_coefficients():
    """Smooth weights: the smoothed L·M_k is Ā(t) up to the O(bandwidth²) kernel bias.
    Brownian weights: the local covariance has the law's trace d² s_A² + d s_b²."""
    L, beta = 512, 0.5
    wp = lm.synthetic_weight_paths("linear_ode", L, 2, 3, 0, beta=beta)
    est = lm.estimate_coefficients(wp.A, wp.b, wp.delta.expand(2, L), 0.05, 20, with_row_cov=False)
    inner = slice(2, -2)  # away from the cut windows at the ends
    truth = torch.stack([wp.limit_A(float(t)) for t in est.ts], 1)
    rel = (est.A_bar[:, inner] - truth[:, inner]).norm() / truth[:, inner].norm()
    assert rel < 0.03
    wp = lm.synthetic_weight_paths("diffusive", 1024, 4, 3, 0, n_fine=1024)
    est = lm.estimate_coefficients(wp.A, wp.b, torch.ones(4, 1024, dtype=torch.float64), 0.1, 10)
    trace = float(wp.law.noise_A.pow(2).sum() + wp.law.noise_b.pow(2).sum())
    assert abs(float(est.cov_trace.mean()) / trace - 1) < 0.05
    C = est.row_cov.mean((0, 1))  # ≈ the law's diagonal row covariances
    torch.testing.assert_close(C, wp.law.row_cov(0.0), atol=0.06 * trace / 3, rtol=0)


def test_interpolation_weights_are_the_tabulated_coefficient():
    """W @ values is the linearly interpolated (clamped) coefficient at every time, grid points included."""
    from resnet_scaling.limits.coefficients import interpolation_weights
    from resnet_scaling.sde.coefficients import Tabulated

    ts = torch.linspace(0, 1, 11, dtype=torch.float64)
    values = torch.randn(11, 2, 3, dtype=torch.float64)
    times = torch.cat([torch.rand(50, dtype=torch.float64), ts])
    W = interpolation_weights(ts, times)
    torch.testing.assert_close(torch.einsum("kt,tij->kij", W, values), torch.stack([Tabulated(ts, values)(float(t)) for t in times]),
                               rtol=1e-14, atol=1e-14)
    outside = interpolation_weights(ts, torch.tensor([-0.1, 1.2], dtype=torch.float64))  # clamped to the ends
    torch.testing.assert_close(torch.einsum("kt,tij->kij", outside, values), values[[0, -1]], rtol=0, atol=0)


def test_kernel_estimates_are_their_definitions_at_any_layer_chunk(monkeypatch):
    """A layer chunk at a time, the estimates are the defining sums: Ā = Σ_k K(t, k) L M_k and
    the residuals √L (M_k − Ā(t_k)/L) with Ā interpolated at the layer centres t_k = (k + ½)/L."""
    from resnet_scaling.limits import coefficients
    from resnet_scaling.sde.coefficients import Tabulated
    from resnet_scaling.sde.smoothing import kernel_matrix, layer_centres

    L = 50
    wp = lm.synthetic_weight_paths("diffusive", L, 2, 3, 0, n_fine=200)
    delta = 0.5 + torch.rand(2, L, dtype=torch.float64)
    est = lm.estimate_coefficients(wp.A, wp.b, delta, 0.1, 10)
    monkeypatch.setattr(coefficients, "LAYER_CHUNK", 7)
    chunked = lm.estimate_coefficients(wp.A, wp.b, delta, 0.1, 10)
    for name in ("A_bar", "b_bar", "A_mean", "b_mean", "delta_bar", "cov_trace", "residuals", "row_cov"):
        torch.testing.assert_close(getattr(chunked, name), getattr(est, name), rtol=1e-12, atol=1e-14)
    K = kernel_matrix(est.ts, L, 0.1)
    M = delta[..., None, None] * wp.A
    torch.testing.assert_close(est.A_bar, torch.einsum("tk,skij->stij", K, L * M), rtol=1e-12, atol=1e-14)
    drift = Tabulated(est.ts, est.A_bar.transpose(0, 1))
    at_centres = torch.stack([drift(float(c)) for c in layer_centres(L)], 1)
    torch.testing.assert_close(est.residuals[..., :3], math.sqrt(L) * (M - at_centres / L), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(est.cov_trace, torch.einsum("tk,sk->st", K, est.residuals.pow(2).sum((-1, -2))),
                               rtol=1e-12, atol=1e-14)


def test_fit_ode_standin(tmp_path, dataset):
    """Weights of the linear-ODE case (tanh, β = ½, shared δ): the fitted linear ODE is close,
    and the pathwise error with the network's own weights (N = L) falls with depth."""
    paths = [_standin(tmp_path, "ode", lm.synthetic_weight_paths("linear_ode", L, 2, 3, 0, beta=0.5), "tanh", "shared", 3)
             for L in (64, 256)]
    out = lm.fit_trained(paths, dataset, "ODE", FIT_CFG, beta=0.5, experiment="ode")
    s = out["summary"]
    assert s["limit"] == "linear_ode" and s["depths"] == [64, 256]
    assert s["relative_output_error"] < 0.05
    assert 0.9 < s["test_loss_limit"] / s["test_loss_network"] < 1.1
    taylor = s["taylor_remainder_by_depth"]
    assert taylor[256] < taylor[64] / 2
    assert set(out["pathwise"].n_steps) == {8, 32, 64, 256}
    assert set(out["trajectories"].source) == {"network", "pathwise limit", "generative limit"}


def test_fit_sde_standin(tmp_path, dataset):
    """Brownian weights with δ ≡ 1 and softplus0: the Itô SDE is fitted; driven by the
    network's own increments, realised squares leave the O(1/L) Taylor remainder, q dt the
    larger O(L^{-1/2}) one (docs/maths.md §4(c)); the estimated diffusion has the law's trace."""
    paths = [_standin(tmp_path, "sde", lm.synthetic_weight_paths("diffusive", L, 3, 3, 0, n_fine=512), "softplus0", "none", 3)
             for L in (128, 512)]
    out = lm.fit_trained(paths, dataset, "SDE", FIT_CFG, experiment="sde")
    assert out["summary"]["limit"] == "ito_sde"
    pw = out["pathwise"]
    full = pw[pw.measures == "taylor_remainder"].groupby(["depth", "form"]).error.mean()
    assert full[(512, "realised")] < full[(512, "q_dt")]
    assert full[(512, "realised")] < full[(128, "realised")] / 2.5
    coef = out["coefficients"]
    law = lm.diffusive_law(3, 0, **lm.SYNTHETIC_DEFAULTS["diffusive"])
    trace = float(law.noise_A.pow(2).sum() + law.noise_b.pow(2).sum())
    est = coef[(coef.depth == 512) & (coef.quantity == "diffusion_trace")].value.mean()
    assert abs(est / trace - 1) < 0.1
    gen = out["generative"].set_index(["depth", "variant"])
    assert set(gen.loc[512].index) == {"limit", "trend_only", "limit_pooled"}
    # the seeds are draws of one law: pooled, the fresh noise reproduces their spread
    assert 0.6 < gen.loc[(512, "limit_pooled"), "spread_ratio"] < 1.6
    assert out["summary"]["variant"] == "limit_pooled"


@pytest.mark.parametrize("case, activation, delta_type, regime", [
    ("linear_ode", "tanh", "shared", "ODE"), ("diffusive", "softplus0", "none", "SDE")])
def test_pathwise_comparison_does_not_depend_on_how_the_inputs_are_chunked(tmp_path, dataset, monkeypatch, case,
                                                                          activation, delta_type, regime):
    """The pathwise comparison holds the hidden states of a few inputs at a time (memory bounded
    at any depth); each input's paths are its own, so the tables equal those of one chunk."""
    from resnet_scaling.limits import trained

    wp = lm.synthetic_weight_paths(case, 64, 3, 3, 0, **({"beta": 0.5} if case == "linear_ode" else {"n_fine": 256}))
    paths = [_standin(tmp_path, case, wp, activation, delta_type, 3)]
    whole = lm.fit_trained(paths, dataset, regime, FIT_CFG, beta=0.5, experiment=case)
    monkeypatch.setattr(trained, "PATHWISE_CHUNK_ELEMENTS", 65 * 3 * 3 * 3)  # 3 inputs a chunk, 8 inputs
    chunked = lm.fit_trained(paths, dataset, regime, FIT_CFG, beta=0.5, experiment=case)
    assert len(whole["pathwise"]) == 3 * len(set(whole["pathwise"].n_steps)) * len(set(whole["pathwise"].form))
    for name in ("pathwise", "trajectories", "generative"):
        pd.testing.assert_frame_equal(chunked[name], whole[name], rtol=1e-12, atol=0)


def test_beta_estimated_from_the_depths_read_one_at_a_time(tmp_path, dataset):
    """Without β from the scaling stage, β is the slope of the RMS layer norm of A in L: the
    linear-ODE stand-ins were made with β = 0.5."""
    paths = [_standin(tmp_path, "beta", lm.synthetic_weight_paths("linear_ode", L, 2, 3, 0, beta=0.5), "tanh", "shared", 3)
             for L in (64, 256)]
    out = lm.fit_trained(paths, dataset, "ODE", FIT_CFG, experiment="beta")
    assert abs(out["summary"]["beta"] - 0.5) < 0.05
    assert out["summary"]["limit"] == "linear_ode"


@pytest.mark.slow
def test_fit_relu_standin_and_outputs(tmp_path, dataset):
    """Random-sign ReLU layers, regime 'neither': moment-matched diffusion, in law only; the
    writers produce every table, the figures and a note that says so."""
    from resnet_scaling.plots import limits as figs

    paths = [_standin(tmp_path, "relu", lm.synthetic_weight_paths("generic", L, 4, 3, 0), "relu", "multi", 3)
             for L in (32, 64)]
    regimes = tmp_path / "regimes.csv"
    _regimes_table("relu", "neither").to_csv(regimes, index=False)
    outputs = {k: tmp_path / "out" / f"{k}.csv" for k in ("pathwise", "generative", "coefficients", "trajectories", "agreement")}
    outputs["summary"] = tmp_path / "out" / "summary.json"
    summary = lm.write_fit(paths, dataset, regimes, None, FIT_CFG, outputs, experiment="relu")
    assert summary["limit"] == "moment_matched"
    pw = pd.read_csv(outputs["pathwise"])
    assert pw.empty and "relative_error" in pw.columns
    figs.trajectories_figure(pd.read_csv(outputs["trajectories"]), tmp_path / "fig" / "traj.pdf")
    figs.error_figure(pw, pd.read_csv(outputs["generative"]), tmp_path / "fig" / "err.pdf")
    figs.coefficients_figure(pd.read_csv(outputs["coefficients"]), tmp_path / "fig" / "coef.pdf")
    assert all((tmp_path / "fig" / f"{n}.{e}").stat().st_size > 0 for n in ("traj", "err", "coef") for e in ("pdf", "png"))
    note = lm.write_note([outputs["summary"]], None, tmp_path / "note.md", tmp_path / "summary.csv")
    assert "compared in law only" in note and "### relu" in note


def test_convergence_table_and_figure(tmp_path):
    from resnet_scaling.plots import limits as figs

    cfg = {"depths": [16, 32, 64], "dim": 3, "ode": {"n_paths": 2, "n_inputs": 2, "linear": {"softplus0": [0.5]}},
           "diffusive": {"n_paths": 8, "max_depth": 32}, "generic": {"depths": [16, 32], "n_paths": 50,
           "reference_paths": 100, "reference_steps": 16, "steps": 8, "max_layers": 8}}
    table, fits = lm.write_limit_convergence(cfg, tmp_path / "c.csv", tmp_path / "f.csv", progress=False)
    assert {"case", "L", "error", "with_ito_term"} <= set(pd.read_csv(tmp_path / "c.csv").columns)
    assert set(table.case) == {"neural_ode", "linear_ode", "diffusive", "generic_network", "generic_moment_matched", "generic_floor"}
    assert set(fits.expected) == {-1.0, -0.5, 0.0}
    figs.convergence_figure(pd.read_csv(tmp_path / "c.csv"), pd.read_csv(tmp_path / "f.csv"), tmp_path / "conv.pdf")
    assert (tmp_path / "conv.png").stat().st_size > 0


def test_mean_field_ode_of_rough_relu_weights_converges_at_rate_one_half():
    """docs/maths.md §4(e): ReLU with δ_k = (1 + ξ_k)/L, A_k = Ā + Z_k, b_k = b̄ + z_k: each
    network approaches the deterministic mean-field ODE, whose field is the Gaussian average
    E relu(N(m, v)); the error of the network against the integrated exact field falls like L^{-1/2}.
    The window-mean estimate of that field from the network's own layers follows the network."""
    from resnet_scaling.sde import MomentMatchedDiffusion, relu_gaussian_moments, solve_mean_field_ode

    d, n = 4, 64
    gen = torch.Generator().manual_seed(3)
    A_bar = torch.randn(d, d, generator=gen, dtype=torch.float64) * 0.5
    b_bar = torch.randn(d, generator=gen, dtype=torch.float64) * 0.5
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    # the exact limit: dH/dt = E_Z relu((Ā + Z) H + b̄ + z), Z, z i.i.d. N(0, 1) entries
    steps = 4096
    H = x.clone()
    for _ in range(steps):
        m = H @ A_bar.T + b_bar
        v = (H * H).sum(-1, keepdim=True) + 1.0
        H = H + relu_gaussian_moments(m, v.expand_as(m))[0] / steps
    errors, estimated = [], []
    depths = [64, 256, 1024, 4096]
    for L in depths:
        g = torch.Generator().manual_seed(L)
        A = A_bar + torch.randn(L, d, d, generator=g, dtype=torch.float64)
        b = b_bar + torch.randn(L, d, generator=g, dtype=torch.float64)
        delta = (1.0 + torch.randn(L, generator=g, dtype=torch.float64)) / L
        h = x.clone()
        for k in range(L):
            h = h + delta[k] * torch.relu(h @ A[k].T + b[k])
        errors.append(float((h - H).norm(dim=-1).pow(2).mean().sqrt()))
        model = MomentMatchedDiffusion(A[None], b[None], delta[None], "relu", 0.1)
        mf = solve_mean_field_ode(model, x, 50, max_layers=256)[-1, 0]
        estimated.append(float((mf - h).norm(dim=-1).pow(2).mean().sqrt() / (h - x).norm(dim=-1).pow(2).mean().sqrt()))
    slope = np.polyfit(np.log(depths), np.log(errors), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.15), (slope, errors)
    assert estimated[-1] < 0.1, estimated  # the estimated field reproduces the deepest network


def test_the_limit_fit_takes_the_networks_of_the_primary_verdict(tmp_path, dataset):
    """Converged and stopped seeds: the fit keeps the converged ones, a depth without one is left
    out, and the depths of the fit are the deepest that hold one."""
    statuses = {32: ["converged", "stopped", "converged", "stopped"], 64: ["stopped"] * 4,
                128: ["stopped", "converged", "stopped", "stopped"]}
    paths = [_standin(tmp_path, "mixed", lm.synthetic_weight_paths("generic", L, 4, 3, 0), "relu", "multi", 3,
                      status=statuses[L]) for L in (32, 64, 128)]
    out = lm.fit_trained(paths, dataset, "neither", FIT_CFG, experiment="mixed", statuses=("converged",))
    s = out["summary"]
    assert s["population"] == "converged" and s["networks_by_depth"] == {32: 2, 128: 1}
    assert s["depths"] == [32, 128] and set(out["coefficients"].seed) == {0, 1, 2}
    with pytest.raises(ValueError, match="no network of status max_epochs"):
        lm.fit_trained(paths, dataset, "neither", FIT_CFG, experiment="mixed", statuses=("max_epochs",))
    regimes = tmp_path / "regimes.csv"
    _regimes_table("mixed", "neither").assign(population="converged", primary=True).to_csv(regimes, index=False)
    training = tmp_path / "training.csv"
    pd.DataFrame([{"experiment": "mixed", "depth": L, "seed": i, "status": st}
                  for L, sts in statuses.items() for i, st in enumerate(sts)]).to_csv(training, index=False)
    assert lm.fit_depths(regimes, training, "mixed", [16, 32, 64, 128], 2) == [32, 128]
    assert lm.fit_depths(regimes, training, "mixed", [16, 32, 64, 128], 5) == [32, 128]
    _regimes_table("mixed", "neither").to_csv(regimes, index=False)  # no populations: the deepest of the grid
    assert lm.fit_depths(regimes, training, "mixed", [16, 32, 64, 128], 2) == [64, 128]


