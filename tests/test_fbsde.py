"""The backpropagation limit (docs/maths.md §5) checked against mathematics: exact discrete
adjoints (autograd), closed forms (matrix exponentials), RK4 order, and the convergence
rates of §7 within ±0.15 on synthetic weight paths and on stand-in training outputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.linalg import expm

from resnet_scaling import fbsde, limits, sde
from resnet_scaling.io import read_npz, write_npz
from resnet_scaling.plots import fbsde as figures
from resnet_scaling.training.resnet import ResNetEnsemble

TOL = 0.15  # docs/maths.md §7




def _inputs(n: int, d: int):
    return limits.unit_inputs(n, d, 1), limits.unit_inputs(n, d, 2)


def _slope(slopes: pd.DataFrame, quantity: str, statistic: str = "rms", with_ito_term: bool = True) -> float:
    row = slopes[(slopes["quantity"] == quantity) & (slopes["statistic"] == statistic) & (slopes["with_ito_term"] == with_ito_term)]
    assert len(row) == 1
    return float(row["slope"].iloc[0])


# ----------------------------------------------------------------------------------------
# the solvers are the right adjoints
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_ito_term", [True, False])
@pytest.mark.parametrize("covariation", ["realised", "rate"])
def test_backward_sde_is_the_exact_adjoint_of_the_forward_scheme(with_ito_term, covariation):
    """P_0 of the backward equation equals autograd's ∂ℓ/∂x through sde.solve_ito_sde."""
    P, n, d, N = 3, 64, 3, 2
    wp = limits.synthetic_weight_paths("diffusive", 8, P, d, 0, n_fine=n)
    x, y = _inputs(N, d)
    row_cov = None if covariation == "realised" else wp.law.row_cov(0.0)
    xx = x.expand(P, N, d).clone().requires_grad_(True)
    H = sde.solve_ito_sde(wp.dWA_fine, wp.dWb_fine, xx, "softplus0", with_ito_term, row_cov=row_cov)
    (grad,) = torch.autograd.grad(0.5 * ((H[-1] - y) ** 2).sum(), [xx])
    lim = fbsde.solve_fbsde(wp.dWA_fine, wp.dWb_fine, x, y, "softplus0", with_ito_term, row_cov=row_cov)
    torch.testing.assert_close(lim.h, H.detach(), rtol=0, atol=1e-13)
    torch.testing.assert_close(lim.p[0], grad, rtol=0, atol=1e-12)


def test_linear_adjoint_matches_the_matrix_exponential():
    """Constant Ā, b̄ = 0: H_1 = e^{gĀ} x and P_t = e^{gĀᵀ(1−t)} (H_1 − y), g = σ'(0)."""
    P, d, N, n = 2, 3, 2, 64
    x, y = _inputs(N, d)
    A = torch.randn(P, d, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    T = 2 * n + 1
    lim = fbsde.ode_backprop("linear_ode", A.expand(T, P, d, d), torch.zeros(T, P, d, dtype=torch.float64), x, y, "softplus0")
    g = 0.5
    for p in range(P):
        H1 = x.numpy() @ expm(g * A[p].numpy()).T
        for k in (0, n // 4, n // 2):
            Pt = (H1 - y.numpy()) @ expm(g * A[p].numpy().T * (1 - k / n)).T
            np.testing.assert_allclose(lim.p[k, p].numpy(), Pt, atol=1e-7)
        np.testing.assert_allclose(lim.h[-1, p].numpy(), H1, atol=1e-7)


@pytest.mark.parametrize("engine", ["compiled", "python"])
def test_neural_ode_adjoint_is_fourth_order(engine):
    """P_0 of the RK4 adjoint against autograd through the RK4 forward: error O(n⁻⁴), in the
    compiled loops and in torch operations alike."""
    from resnet_scaling.sde import compiled

    if engine == "compiled" and compiled.library() is None:
        pytest.skip("the compiled loops cannot be built here")
    P, d, N = 2, 3, 2
    x, y = _inputs(N, d)
    wp = limits.synthetic_weight_paths("neural_ode", 16, P, d, 0)
    errors = []
    for n in (16, 32, 64):
        ts = fbsde.half_grid(n)
        lim = fbsde.ode_backprop("neural_ode", wp.limit_A.on_grid(ts), wp.limit_b.on_grid(ts), x, y, "tanh",
                                 engine=engine)
        xx = x.expand(P, N, d).clone().requires_grad_(True)
        H = sde.solve_neural_ode(wp.limit_A, wp.limit_b, xx, "tanh", n_steps=n)
        (grad,) = torch.autograd.grad(0.5 * ((H[-1] - y) ** 2).sum(), [xx])
        errors.append(float((grad - lim.p[0]).abs().max()))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 4) < 0.6), orders


def test_network_backprop_matches_autograd():
    """The engine's adjoint, seen through network_backprop: p_0 = ∂ℓ/∂x, δ_k ∂ℓ/∂M_k = ∂ℓ/∂A_k."""
    P, L, d, N = 2, 6, 3, 4
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(P, L, d, d, generator=gen, dtype=torch.float64) * 0.4
    b = torch.randn(P, L, d, generator=gen, dtype=torch.float64) * 0.3
    delta = torch.randn(P, L, generator=gen, dtype=torch.float64) * 0.5
    x, y = _inputs(N, d)
    net = fbsde.network_backprop(A, b, delta, "softplus0", x, y, loss_scale=0.7)
    AA, bb = A.clone().requires_grad_(True), b.clone().requires_grad_(True)
    xx = x.expand(P, N, d).clone().requires_grad_(True)
    h = xx
    for k in range(L):
        z = torch.matmul(h, AA[:, k].transpose(1, 2)) + bb[:, k, None, :]
        h = h + delta[:, k, None, None] * (torch.nn.functional.softplus(z) - math.log(2))
    gx, gA, gb = torch.autograd.grad(0.35 * ((h - y) ** 2).sum(), [xx, AA, bb])
    torch.testing.assert_close(net.p[0], gx, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close((net.grad_M * net.delta[..., None, None]).transpose(0, 1), gA, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close((net.grad_m * net.delta[..., None]).transpose(0, 1), gb, rtol=1e-12, atol=1e-13)


def test_limit_gradients_need_a_layer_grid_inside_the_reference_grid():
    lim = fbsde.LimitBackprop(torch.zeros(13, 1, 1, 2), torch.zeros(13, 1, 1, 2), 1.0)
    assert lim.on_layers(4)[2].shape == (4, 1, 2, 2)
    with pytest.raises(ValueError, match="must divide"):
        lim.on_layers(5)


# ----------------------------------------------------------------------------------------
# rates on synthetic weight paths (docs/maths.md §5, §7)
# ----------------------------------------------------------------------------------------
ODE_DEPTHS = [16, 32, 64, 128, 256, 512, 1024]


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "neural_ode", "case": "neural_ode", "activation": "tanh"},
        {"name": "linear_ode_beta0.5", "case": "linear_ode", "activation": "softplus0", "beta": 0.5},
        {"name": "linear_ode_beta0.25", "case": "linear_ode", "activation": "softplus0", "beta": 0.25},
    ],
    ids=lambda s: s["name"],
)
def test_ode_regimes_converge_at_the_predicted_rate(spec):
    """sup_k |p_k − P_{k/L}| and the rescaled per-layer gradient errors: −1 (neural ODE), −β
    (softplus − log 2, β > 0)."""
    spec = {**spec, "depths": ODE_DEPTHS, "n_paths": 4}
    errors, _ = fbsde.run_case(spec, 0, 3, 2)
    slopes = fbsde.fit_slopes(errors)
    expected = fbsde.limit_rate(spec["case"], "adjoint_sup", spec["activation"], spec.get("beta", 0.0))
    assert expected == (-1.0 if spec["case"] == "neural_ode" else -spec["beta"])
    for quantity in ("adjoint_sup", "grad_A_rms", "grad_b_rms"):
        for statistic in ("rms", "median"):
            assert abs(_slope(slopes, quantity, statistic) - expected) < TOL, (quantity, statistic)


@pytest.fixture(scope="module")
def diffusive():
    spec = {
        "name": "diffusive", "case": "diffusive", "activation": "softplus0", "depths": [16, 32, 64, 128, 256, 512],
        "n_paths": 100, "ref_factor": 16, "with_ito_term": [True, False],
    }
    errors, _ = fbsde.run_case(spec, 0, 3, 2)
    return errors, fbsde.fit_slopes(errors)


@pytest.mark.slow
@pytest.mark.parametrize("quantity", ["adjoint_sup", "grad_A_rms", "grad_b_rms"])
def test_forward_backward_sde_converges_at_rate_one_half(diffusive, quantity):
    """Network adjoint and per-layer gradients (RMS over layers) against the FBSDE on the
    same weight path: slope −1/2, RMS and median over 100 paths."""
    _, slopes = diffusive
    for statistic in ("rms", "median"):
        assert abs(_slope(slopes, quantity, statistic) - limits.RATE_DIFFUSIVE) < TOL, statistic


@pytest.mark.parametrize("quantity", ["adjoint_sup", "grad_A_rms", "grad_b_rms"])
def test_without_the_ito_term_the_error_stays_of_order_one(diffusive, quantity):
    errors, slopes = diffusive
    assert fbsde.limit_rate("diffusive", quantity, "softplus0", with_ito_term=False) == 0.0
    assert abs(_slope(slopes, quantity, "rms", with_ito_term=False)) < TOL
    deepest = errors[(errors["quantity"] == quantity) & (errors["L"] == errors["L"].max())].set_index("with_ito_term")["error"]
    assert deepest[False] > 3 * deepest[True]


def test_gradients_are_continuous_although_the_weights_are_rough(diffusive):
    """Roughness (RMS increment / RMS norm) against L: the weights are increments of a
    Brownian path (slope 0), the per-layer gradients a continuous Brownian-like path (−1/2)."""
    _, slopes = diffusive
    for statistic in ("rms", "median"):
        assert abs(_slope(slopes, "weight_roughness", statistic)) < TOL
        assert abs(_slope(slopes, "gradient_roughness", statistic) + 0.5) < TOL
    assert fbsde.limit_rate("diffusive", "gradient_roughness", "softplus0") == -0.5


def test_same_config_gives_the_same_numbers():
    spec = {"name": "d", "case": "diffusive", "activation": "softplus0", "depths": [4, 8, 16], "n_paths": 3, "ref_factor": 16}
    first, _ = fbsde.run_case(spec, 5, 2, 1)
    second, _ = fbsde.run_case(spec, 5, 2, 1)
    pd.testing.assert_frame_equal(first, second)


def test_bad_cases_fail_with_one_sentence():
    base = {"name": "x", "case": "neural_ode", "activation": "tanh", "n_paths": 1}
    with pytest.raises(ValueError, match="must divide the deepest"):
        fbsde.check_cases([{**base, "depths": [16, 24, 64]}])
    with pytest.raises(ValueError, match="at least three depths"):
        fbsde.check_cases([{**base, "depths": [16, 32]}])
    with pytest.raises(ValueError, match="ref_factor >= 16"):
        fbsde.check_cases([{**base, "case": "diffusive", "depths": [4, 8, 16], "ref_factor": 4}])


# ----------------------------------------------------------------------------------------
# trained networks: stand-in training outputs in the training format
# ----------------------------------------------------------------------------------------
STANDIN_DEPTHS = [16, 32, 64, 128, 256]


def _write_standin(path, depth: int, S: int = 2, d: int = 4) -> None:
    """A "trained" tanh network with shared δ = 1/L and smooth weights A(k/L), b(k/L) (a
    neural-ODE discretisation), and its xavier-depth initialisation, as a training output."""
    gen = torch.Generator().manual_seed(11)
    fA = limits.SmoothPath.random((S, d, d), 1.0 / math.sqrt(d), gen)
    fb = limits.SmoothPath.random((S, d), 0.5, gen)
    tk = torch.arange(depth, dtype=torch.float64) / depth
    init = ResNetEnsemble.initialise(depth, d, range(S), "shared", "xavier-depth", 0.01, activation="tanh", key="standin")
    w0 = init.to_numpy()
    cfg = {"dataset": "standin", "activation": "tanh", "delta": "shared"}
    write_npz(
        path,
        metadata={"experiment": "standin", "config": cfg, "dataset": "standin", "depth": depth},
        A=fA.on_grid(tk).transpose(0, 1).numpy(), b=fb.on_grid(tk).transpose(0, 1).numpy(),
        delta=np.full((S, depth), 1.0 / depth), A_init=w0["A"], b_init=w0["b"], delta_init=w0["delta"],
        seeds=np.arange(S), epochs=np.full(S, 3), status=np.array(["converged"] * S),
        train_loss=np.ones((S, 3)), test_loss=np.ones((S, 3)), epoch_loss=np.ones((S, 3)),
    )


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    root = tmp_path_factory.mktemp("fbsde_standin")
    paths = []
    for L in STANDIN_DEPTHS:
        paths.append(root / f"depth_{L}.npz")
        _write_standin(paths[-1], L)
    x, y = _inputs(6, 4)
    write_npz(root / "data.npz", x_train=x.numpy(), y_train=y.numpy(), x_test=x.numpy(), y_test=y.numpy())
    out = {k: root / f"{k}.csv" for k in ("table", "slopes", "paths")}
    out["field"] = root / "field.npz"
    cfg = {"n_inputs": 6, "bandwidth": 1e-3, "min_fit_depth": 16, "n_figure_inputs": 2}
    fbsde.write_trained([str(p) for p in paths], str(root / "data.npz"), cfg, out, progress=False)
    return root, out


def test_trained_networks_against_their_limit_system(standin):
    """A network that is the Euler scheme of a neural ODE: its smoothed-weight limit gives
    adjoint and gradient errors O(1/L); smooth weights and gradients have roughness O(1/L),
    i.i.d. initial weights O(1)."""
    _, out = standin
    slopes = pd.read_csv(out["slopes"]).set_index(["state", "limit", "quantity"])["slope"]
    for quantity in ("adjoint_sup", "grad_A_rms", "grad_b_rms"):
        assert abs(slopes["trained", "neural_ode", quantity] + 1.0) < TOL, quantity
    assert abs(slopes["trained", "network", "weight_roughness"] + 1.0) < TOL
    assert abs(slopes["trained", "network", "gradient_roughness"] + 1.0) < TOL
    assert abs(slopes["init", "network", "weight_roughness"]) < TOL
    table = pd.read_csv(out["table"])
    assert set(table["state"]) == {"trained", "init"}
    assert set(table["limit"]) == {"network", *fbsde.TRAINED_LIMITS}
    assert table["value"].notna().all()


def test_a_few_networks_at_a_time_give_the_numbers_of_all_at_once(standin, monkeypatch):
    """The comparison's memory is bounded by chunks of networks; every network's numbers and the
    table's row order stay those of one call on all networks."""
    from resnet_scaling.fbsde import trained as trained_module
    from resnet_scaling.scaling.weights import from_training

    root, _ = standin
    arrays, meta = read_npz(root / "depth_64.npz")
    arrays = {**{k: np.concatenate([v] * 3) for k, v in arrays.items() if k in ("A", "b", "delta", "status", "epochs")},
              **{k: v for k, v in arrays.items() if k not in ("A", "b", "delta", "status", "epochs", "seeds")},
              "seeds": np.arange(6)}
    w = from_training({k: v for k, v in arrays.items() if not k.endswith("_init") and "loss" not in k}, meta)
    x, y = _inputs(6, 4)
    whole = trained_module.compare_trained(w, x, y, state="trained", bandwidth=0.05)
    monkeypatch.setattr(trained_module, "CHUNK_ELEMENTS", (2 * 64 + 1) * 4 * 6 * 2)  # two networks a chunk
    assert trained_module._networks_per_chunk(w, 6) == 2
    chunked = trained_module.compare_trained(w, x, y, state="trained", bandwidth=0.05,
                                             figure=lambda net, lims, M: (net.grad_M.shape[1], M.shape[0]))
    pd.testing.assert_frame_equal(chunked.table, whole.table)
    assert chunked.figure == (2, 1)  # drawn from the first chunk (two networks), of its first seed
    assert whole.figure is None


@pytest.mark.slow
def test_figures_are_written(standin, tmp_path):
    _, out = standin
    figs = {k: tmp_path / f"trained_{k}.png" for k in ("error", "paths", "field")}
    figures.trained_figures(out, figs, "standin")
    cfg = {
        "seed": 0, "dim": 2, "n_inputs": 1, "figure_case": "d", "figure_depths": [4],
        "cases": [
            {"name": "n", "case": "neural_ode", "activation": "tanh", "depths": [4, 8, 16], "n_paths": 2},
            {"name": "d", "case": "diffusive", "activation": "softplus0", "depths": [4, 8, 16], "n_paths": 4, "ref_factor": 16},
        ],
    }
    conv = {k: tmp_path / f"{k}.csv" for k in ("errors", "slopes", "paths")}
    conv["field"] = tmp_path / "field.npz"
    fbsde.write_adjoint_convergence(cfg, conv, progress=False)
    errors = pd.read_csv(conv["errors"])
    assert {"case", "L", "quantity", "error", "with_ito_term"} <= set(errors.columns)
    assert read_npz(conv["field"])[0]["network"].shape == (16, 2, 2)
    synth = {k: tmp_path / f"synthetic_{k}.png" for k in ("convergence", "paths", "field")}
    figures.synthetic_figures(conv, synth, "d")
    for path in [*figs.values(), *synth.values()]:
        assert path.stat().st_size > 0 and path.with_suffix(".pdf").stat().st_size > 0


def test_figure_choices_must_name_a_case_and_its_depths():
    cases = [{"name": "n", "case": "neural_ode", "activation": "tanh", "depths": [4, 8, 16], "n_paths": 1}]
    with pytest.raises(ValueError, match="figure_case"):
        fbsde.check_cases(cases, "d", [4])
    with pytest.raises(ValueError, match="figure_depths"):
        fbsde.check_cases(cases, "n", [32])
    fbsde.check_cases(cases, "n", [4, 16])


@pytest.mark.parametrize("layers,small", [("delta 1, A of size L^-1/2", True), ("delta L^-1/2, A of size 1", False)])
def test_the_diffusive_system_on_own_increments_needs_small_pre_activations(layers, small):
    """docs/maths.md §4(c) against §4(g): with δ ≡ 1 and i.i.d. A_k, b_k of size L^{-1/2} the
    pre-activations vanish and the diffusive forward-backward system driven by the network's own
    increments approaches its adjoint (slope about −1); with δ = L^{-1/2} and O(1) layers (the same
    M_k = δA_k in law) they stay O(1) and the adjoint error does not fall."""
    from resnet_scaling.fbsde.backprop import network_backprop
    from resnet_scaling.fbsde.compare import compare
    from resnet_scaling.fbsde.trained import trained_limit

    d, P = 3, 8
    x, y = _inputs(4, d)
    depths, errors = [16, 64, 256, 1024], []
    for L in depths:
        gen = torch.Generator().manual_seed(L)
        A = torch.randn(P, L, d, d, generator=gen, dtype=torch.float64) / d**0.5
        b = 0.5 * torch.randn(P, L, d, generator=gen, dtype=torch.float64)
        scale = L**-0.5
        A, b, delta = (A * scale, b * scale, torch.ones(P, L)) if small else (A, b, torch.full((P, L), scale))
        net = network_backprop(A.numpy(), b.numpy(), delta.numpy(), "tanh", x, y)
        lim = trained_limit("diffusive", A, b, delta, "tanh", x, y, bandwidth=0.1)
        errors.append(float(np.median(compare(net, lim)["adjoint_sup"])))
    slope = np.polyfit(np.log(depths), np.log(errors), 1)[0]
    if small:
        assert slope < -0.7, (slope, errors)
    else:
        assert abs(slope) < 0.15 and min(errors) > 0.01, (slope, errors)


@pytest.mark.parametrize("order", [("neural_ode", "linear_ode"), ("linear_ode", "neural_ode")])
def test_limits_of_a_constant_delta_share_their_smoothed_weights(order):
    """With one δ per network the two ODE limits are built from one smoothing of A_k, b_k (the
    linear limit's L δ A_k smoothed is L δ times A_k smoothed): the same numbers as smoothing each."""
    from resnet_scaling.fbsde import trained as trained_module

    rng = np.random.default_rng(11)
    S, L, d = 2, 40, 3
    A, b = rng.normal(size=(S, L, d, d)) / d, rng.normal(size=(S, L, d)) * 0.3
    delta = np.repeat(rng.uniform(0.5, 1.5, size=(S, 1)) / L, L, axis=1)  # one constant per network
    x, y = _inputs(4, d)
    for kind in order:
        alone = trained_module.trained_limit(kind, A, b, delta, "tanh", x, y, bandwidth=0.1)
        shared = trained_module.SharedAverages(2)
        first = trained_module.trained_limit(order[0], A, b, delta, "tanh", x, y, bandwidth=0.1, shared=shared)
        second = trained_module.trained_limit(order[1], A, b, delta, "tanh", x, y, bandwidth=0.1, shared=shared)
        got = first if kind == order[0] else second
        torch.testing.assert_close(got.p, alone.p, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(got.h, alone.h, rtol=1e-12, atol=1e-14)
        assert shared.values is None  # handed over at the last use
