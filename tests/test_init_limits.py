"""Networks at initialisation (docs/maths.md §6) against exact laws, identities and known rates (§7)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.stats import wasserstein_distance

from problems import slope
from resnet_scaling import init_limits as il
from resnet_scaling.distances import bootstrap_wasserstein1
from resnet_scaling.init_limits import kernels as K
from resnet_scaling.plots import init as figures

SLOPE_TOL = 0.15  # docs/maths.md §7




# ------------------------------------------------------------------------------------------
# fractional Gaussian noise
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hurst", [0.2, 0.5, 0.8])
def test_fgn_has_the_exact_autocovariance(hurst):
    n, L = 6000, 64
    x = il.fgn(n, L, hurst, torch.Generator().manual_seed(1)).numpy()
    assert x.shape == (n, L)
    lags = np.arange(6)
    prods = np.stack([(x[:, : L - k] * x[:, k:]).mean(axis=1) for k in lags], axis=1)
    est, se = prods.mean(axis=0), prods.std(axis=0, ddof=1) / math.sqrt(n)
    z = (est - il.fgn_autocovariance(lags, hurst)) / se
    assert np.abs(z).max() < 4.5, z
    # the partial sum is fractional Brownian motion: Var(Σ_k X_k) = L^{2H} exactly
    sums = x.sum(axis=1)
    ratio = sums.var(ddof=1) / L ** (2 * hurst)
    assert abs(ratio - 1) < 4 * math.sqrt(2 / n), ratio
    assert stats.kstest(sums / L**hurst, "norm").pvalue > 1e-3


def test_fgn_is_deterministic_and_checks_hurst():
    a = il.fgn(5, 32, 0.7, torch.Generator().manual_seed(3))
    b = il.fgn(5, 32, 0.7, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="Hurst"):
        il.fgn(2, 8, 1.0, torch.Generator())


# ------------------------------------------------------------------------------------------
# W1 estimator
# ------------------------------------------------------------------------------------------
def test_wasserstein1_equals_scipy_and_bootstrap_resamples_pairs():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(700, 3, generator=gen, dtype=torch.float64)
    b = 1.3 * torch.randn(700, 3, generator=gen, dtype=torch.float64) + 0.2
    est, reps = bootstrap_wasserstein1(a, b, n_boot=1, seed=5, levels=10**6)
    ref = np.mean([wasserstein_distance(a[:, k], b[:, k]) for k in range(3)])
    assert est == pytest.approx(ref, rel=1e-12)
    counts = torch.bincount(torch.randint(0, 700, (700,), generator=torch.Generator().manual_seed(5)), minlength=700)
    idx = torch.repeat_interleave(torch.arange(700), counts)
    ref_boot = np.mean([wasserstein_distance(a[idx, k], b[idx, k]) for k in range(3)])
    assert reps[0] == pytest.approx(ref_boot, rel=1e-12)


# ------------------------------------------------------------------------------------------
# 1 & 3: shallow block, diffusion and first variation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_shallow_jacobian_equals_finite_differences(activation):
    """J = ∂h_L/∂h_0 by the first-variation recursion; the same seed gives the same weights."""
    x0 = np.array([0.7, -0.4, 0.2])
    kw = dict(depths=[4], reference_steps=8, activation=activation, mu_w=0.5, sigma_w=1.0,
              mu_b=0.1, sigma_b=0.5, n_paths=50, seed=3)
    out = il.simulate_shallow(x0, **kw)
    eps = 1e-6
    for L in (4, 8):
        J = out[L][1]
        for j in range(3):
            e = np.eye(3)[j] * eps
            hp = il.simulate_shallow(x0 + e, **kw)[L][0]
            hm = il.simulate_shallow(x0 - e, **kw)[L][0]
            fd = (hp - hm) / (2 * eps)
            assert torch.allclose(J[:, :, j], fd, atol=1e-6), (L, j)


def test_shallow_law_converges_at_weak_order_one():
    """W1 of h_L and of ‖∂h_L/∂h_0‖ to the fine Euler–Maruyama reference: slope −1 (identity φ)."""
    cfg = dict(x0=[1.0, -0.5, 0.25], depths=[2, 4, 8, 16], reference_factor=8, paths=20000,
               bootstrap=20, directions=4, activations=["identity"], mu_w=0.5, sigma_w=1.0,
               mu_b=0.0, sigma_b=0.5)
    w1, quantiles = il.diffusion_law_tables(cfg, seed=0)
    for quantity, g in w1.groupby("quantity"):
        g = g.sort_values("depth")
        assert abs(slope(g.depth, g.w1) + il.WEAK_ORDER) < SLOPE_TOL, quantity
        assert (g.ci_low <= g.w1).all() and (g.w1 <= g.ci_high).all()
    assert set(quantiles.scheme) == {"network", "reference"}


def test_diffusion_tables_are_deterministic():
    cfg = dict(x0=[1.0, 0.0], depths=[2, 4, 8], reference_factor=2, paths=300, bootstrap=5,
               directions=2, activations=["relu"], mu_w=0.0, sigma_w=1.0, mu_b=0.0, sigma_b=0.3)
    a, _ = il.diffusion_law_tables(cfg, seed=7)
    b, _ = il.diffusion_law_tables(cfg, seed=7)
    pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------------------------------
# geometric Brownian motion
# ------------------------------------------------------------------------------------------
def test_gbm_exact_moments_agree_with_the_one_over_L_expansion():
    """Quadrature of L·E log|1+W| against docs/maths.md §6: the gap is O(L^-2)."""
    mu, sigma = 0.7, 1.1
    gaps = []
    for L in (64, 256, 1024):
        exact = il.gbm_exact_moments(L, mu, sigma)
        corrected = il.gbm_limit_moments(L, mu, sigma, corrected=True)
        gaps.append(np.abs(np.subtract(exact, corrected)) * L**2)
    assert np.max(gaps) < 20
    assert gaps[-1].max() < 1.5 * gaps[0].max()  # bounded: really second order


def test_gbm_log_moments_match_the_formula_within_monte_carlo_error():
    cfg = dict(mu_w=0.8, sigma_w=1.0, y0=2.0, depths=[64, 256], paths=100000)
    moments, density = il.gbm_tables(cfg, seed=0)
    assert (moments.z_exact.abs() < 4).all(), moments.z_exact
    assert (moments.z_corrected.abs() < 4).all(), moments.z_corrected
    mean = moments[(moments.statistic == "mean") & (moments.depth == 256)].iloc[0]
    assert mean.limit == pytest.approx(math.log(2.0) + 0.8 - 0.5)
    assert (moments.negative_fraction == 0).all()  # L Φ(−√L/σ) < 1e-14 at L ≥ 64
    assert np.trapezoid(density.density, density.x) == pytest.approx(1, abs=0.02)


# ------------------------------------------------------------------------------------------
# 2: input correlation
# ------------------------------------------------------------------------------------------
def test_correlation_scaled_stays_below_one_unscaled_goes_to_one():
    cfg = dict(inputs=[[1.0, 0.0], [0.6, 0.8]], sigma_w=1.0, sigma_b=0.3, width=96,
               networks_per_depth=24, depths=[1, 4, 16, 48],
               networks=[dict(kind="scaled", activation="relu"),
                         dict(kind="residual", activation="relu"),
                         dict(kind="feedforward", activation="relu", sigma_w=math.sqrt(2))])
    table = il.correlation_table(cfg, seed=0)
    z = (table.correlation - table.theory) / ((table.ci_high - table.ci_low) / 2 / 1.96)
    assert z.abs().max() < 4
    scaled = table[table.kind == "scaled"].sort_values("depth")
    assert scaled.theory_limit.iloc[0] < 0.75 and scaled.ci_high.iloc[-1] < 0.85
    for kind in ("residual", "feedforward"):
        g = table[table.kind == kind].sort_values("depth")
        assert g.correlation.iloc[-1] > 0.9 and np.all(np.diff(g.theory) > 0)
    # the infinite-width recursions themselves tend to 1 (unscaled) and stay below it (scaled)
    K0 = K.input_gram(cfg["inputs"])
    deep = K.correlation(K.kernel_recursion(K0, 1.0, 0.3, "relu", 400, "residual")[-1])[0, 1]
    assert deep > 0.995
    assert K.correlation(K.kernel_recursion(K0, 1.0, 0.3, "relu", 400, "scaled")[-1])[0, 1] < 0.7


# ------------------------------------------------------------------------------------------
# 4: Marion et al. relative change
# ------------------------------------------------------------------------------------------
def test_marion_gradient_is_the_autograd_gradient():
    n, d, L = 5, 4, 7
    weights = il.iid_weights(n, d, "test", L)
    gen = torch.Generator().manual_seed(2)
    h0 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    u = torch.randn(n, d, generator=gen, dtype=torch.float64)
    rel_h, rel_g = il.marion_network(weights, L, [0.5], h0, u)
    x = h0.clone().requires_grad_(True)
    h = x
    for k in range(L):
        V, W = weights(k)
        h = h + L**-0.5 * torch.einsum("pij,pj->pi", V, torch.relu(torch.einsum("pij,pj->pi", W, h)))
    (h * u).sum().backward()
    torch.testing.assert_close(rel_h[0], (h - h0).norm(dim=1).detach() / h0.norm(dim=1))
    torch.testing.assert_close(rel_g[0], (x.grad - u).norm(dim=1) / u.norm(dim=1))


@pytest.mark.parametrize("depth", [16, 64])
def test_relative_change_mean_square_is_the_exact_identity(depth):
    """E‖h_L − h_0‖²/‖h_0‖² and its gradient counterpart = (1 + L^{-2β}/2)^L − 1 (i.i.d.)."""
    n, d, betas = 4000, 8, [0.25, 0.5, 1.0]
    gen = torch.Generator().manual_seed(depth)
    h0 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    u = torch.randn(n, d, generator=gen, dtype=torch.float64)
    rel_h, rel_g = il.marion_network(il.iid_weights(n, d, "identity", depth), depth, betas, h0, u)
    for rel in (rel_h, rel_g):
        sq = rel.numpy() ** 2
        exact = il.relative_change_identity(depth, np.array(betas))
        z = (sq.mean(axis=1) - exact) / (sq.std(axis=1, ddof=1) / math.sqrt(n))
        assert np.abs(z).max() < 4, z
    assert il.relative_change_identity(10**6, 0.5) == pytest.approx(math.expm1(0.5), rel=1e-5)
    assert math.sqrt(il.relative_change_identity(512, 0.5)) == pytest.approx(0.8, abs=0.01)


def test_smooth_weights_at_beta_one_converge_to_the_ode():
    n, d = 64, 6
    smooth = il.SmoothWeights(n, d, 5, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    h0 = torch.randn(n, d, generator=gen, dtype=torch.float64)
    u = torch.randn(n, d, generator=gen, dtype=torch.float64)
    ode_h, ode_g = smooth.ode_limit(h0, u, steps=256)
    depths = [16, 32, 64, 128]
    errs = {"h": [], "g": []}
    for L in depths:
        rel_h, rel_g = il.marion_network(smooth.layers(L), L, [1.0], h0, u)
        errs["h"].append((rel_h[0] - ode_h).abs().mean().item())
        errs["g"].append((rel_g[0] - ode_g).abs().mean().item())
    for key, e in errs.items():
        assert abs(slope(depths, e) + 1.0) < SLOPE_TOL, (key, e)


def test_relative_change_table_counts_explosions():
    cfg = dict(dim=4, paths=32, betas=[0.0, 1.0], depths=[8, 512], bootstrap=20, smooth_modes=4,
               ode_steps=16, explosion_threshold=1e12)
    table = il.relative_change_table(cfg, seed=0)
    boom = table[(table.beta == 0.0) & (table.depth == 512)]
    assert (boom.exploded > 0).all() and np.isinf(boom.rms).all()
    calm = table[table.beta == 1.0]
    assert (calm.exploded == 0).all() and np.isfinite(calm.rms).all()


# ------------------------------------------------------------------------------------------
# 5: phase diagram
# ------------------------------------------------------------------------------------------
def test_critical_line_follows_max_hurst_one_half():
    cfg = dict(dim=6, paths=64, betas=list(np.round(np.arange(0.0, 1.21, 0.1), 2)),
               depths=[64, 512], hursts=[0.2, 0.8])
    paths = il.phase_diagram_table(cfg, seed=0)
    cells, line = il.critical_line(paths, n_boot=50, seed=0)
    assert (np.abs(line.beta_critical - line.theory) < SLOPE_TOL).all(), line
    # explosions are counted and kept as they are, never clipped
    boom = paths[(paths.beta == 0.0) & (paths.depth == 512)]
    assert boom.exploded.all()
    assert (~np.isfinite(boom.relative_change) | (boom.relative_change > il.EXPLOSION_THRESHOLD)).all()
    assert (cells[(cells.beta == 0.0) & (cells.depth == 512)].exploded == 64).all()
    # above the critical line the growth exponent is max(H, 1/2) − β
    far = cells[(cells.beta >= 1.1) & (cells.depth == 512)]
    assert np.allclose(far.slope, np.maximum(far.hurst, 0.5) - far.beta, atol=0.2)


# ------------------------------------------------------------------------------------------
# 6: kernels and the doubly infinite limit
# ------------------------------------------------------------------------------------------
def test_expected_products_match_monte_carlo():
    gen = np.random.default_rng(0)
    Kmat = np.array([[2.0, -0.6], [-0.6, 0.5]])
    u = gen.multivariate_normal([0, 0], Kmat, size=400000)
    for act, f in (("relu", lambda z: np.maximum(z, 0)), ("tanh", np.tanh)):
        prod = f(u[:, 0]) * f(u[:, 1])
        val = K.expected_product(act, 2.0, 0.5, -0.6)
        assert abs(prod.mean() - val) < 4 * prod.std() / math.sqrt(len(prod)), act
    assert K.relu_expected_product(1.3, 1.3, 1.3) == pytest.approx(0.65)  # E relu(u)² = k/2


def test_kernel_ode_diagonal_is_the_relu_closed_form_and_the_recursion_converges():
    K0 = K.input_gram([[1.0, 0.0, 0.0], [0.9, 1.2, 0.0], [-0.3, 0.4, 1.5]])
    ts = np.linspace(0, 1, 6)
    ode = K.kernel_ode(K0, 1.3, 0.4, "relu", ts)
    closed = K.relu_diagonal(np.diag(K0), 1.3, 0.4, ts[:, None])
    assert np.abs(np.diagonal(ode, axis1=1, axis2=2) - closed).max() < 1e-9
    errs = [np.abs(K.kernel_recursion(K0, 1.3, 0.4, "relu", L, "scaled")[-1] - ode[-1]).max() for L in (16, 32, 64, 128)]
    assert abs(slope([16, 32, 64, 128], errs) + 1.0) < 0.05  # Euler: O(1/L)


def test_row_sampler_has_the_law_of_explicit_weights():
    X = [[1.0, 0.0], [0.5, 1.0]]
    kw = dict(width=24, depth=6, sigma_w=1.2, sigma_b=0.5, activation="relu", n_networks=600)
    _, rows = K.sample_kernels(X, seed=1, method="rows", **kw)
    _, full = K.sample_kernels(X, seed=2, method="weights", **kw)
    for i, j in ((0, 0), (0, 1), (1, 1)):
        assert stats.ks_2samp(rows[:, -1, i, j], full[:, -1, i, j]).pvalue > 1e-3, (i, j)


def test_kernel_error_decays_like_inverse_square_root_width():
    cfg = dict(inputs=[[1.0, 0.0, 0.0], [0.9, 1.2, 0.0], [-0.3, 0.4, 1.5]], activation="relu",
               sigma_w=1.0, sigma_b=0.5, depth=16, networks=48, widths=[32, 64, 128, 256, 512, 1024],
               time_points=4, bootstrap=50)
    errors, paths = K.kernel_width_table(cfg, seed=0)
    for entry, g in errors[errors.reference == "ode"].groupby("entry"):
        assert abs(slope(g.width, g.rms_error) - K.KERNEL_WIDTH_RATE) < SLOPE_TOL, entry
    top = paths[paths.width == 1024]
    assert ((top.ode >= top.ci_low) & (top.ode <= top.ci_high)).mean() >= 0.8


# ------------------------------------------------------------------------------------------
# figures and the note
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_figures_and_note_are_written(tmp_path):
    w1, q = il.diffusion_law_tables(dict(x0=[1.0, 0.5], depths=[2, 4, 8], reference_factor=2, paths=400,
                                         bootstrap=5, directions=2, activations=["tanh"], mu_w=0.0,
                                         sigma_w=1.0, mu_b=0.0, sigma_b=0.3), seed=0)
    gbm, dens = il.gbm_tables(dict(mu_w=0.5, sigma_w=1.0, depths=[8, 16, 32], paths=2000), seed=0)
    corr = il.correlation_table(dict(inputs=[[1.0, 0.0], [0.6, 0.8]], sigma_w=1.0, sigma_b=0.3, width=16,
                                     networks_per_depth=4, depths=[1, 2, 4],
                                     networks=[dict(kind="scaled", activation="tanh"),
                                               dict(kind="feedforward", activation="relu")]), seed=0)
    rel = il.relative_change_table(dict(dim=3, paths=16, betas=[0.25, 1.0], depths=[4, 8, 16], bootstrap=10,
                                        smooth_modes=3, ode_steps=8), seed=0)
    paths = il.phase_diagram_table(dict(dim=3, paths=8, betas=[0.0, 0.5, 1.0], depths=[8, 32],
                                        hursts=[0.3, 0.7]), seed=0)
    cells, line = il.critical_line(paths, n_boot=10)
    kerr, kpaths = K.kernel_width_table(dict(inputs=[[1.0, 0.0], [0.6, 0.8]], activation="relu", sigma_w=1.0,
                                             sigma_b=0.5, depth=4, networks=6, widths=[8, 16, 32],
                                             bootstrap=10), seed=0)
    figures.law_convergence_figure(w1, q, "state", tmp_path / "a.pdf")
    figures.law_convergence_figure(w1, q, "jacobian_norm", tmp_path / "b.pdf")
    figures.gbm_figure(gbm, dens, tmp_path / "c.pdf")
    figures.correlation_figure(corr, tmp_path / "d.pdf")
    figures.relative_change_figure(rel, tmp_path / "e.pdf")
    figures.phase_diagram_figure(cells, line, tmp_path / "f.pdf")
    figures.kernels_figure(kerr, kpaths, tmp_path / "g.pdf")
    for name in "abcdefg":
        for ext in ("pdf", "png"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 1000
    summary = il.summarise(w1, gbm, corr, rel, line, kerr, kpaths)
    note = il.note_markdown(summary)
    assert f"{summary['checks_agreeing']} of {summary['checks']} comparisons agree" in note
    for section in ("## 1 & 3", "## 2.", "## 4.", "## 5.", "## 6."):
        assert section in note
