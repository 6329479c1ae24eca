"""The explicit adjoint against torch.autograd in float64; ensemble independence."""

import itertools

import numpy as np
import pytest
import torch

from resnet_scaling.training.activations import ACTIVATIONS
from resnet_scaling.training.resnet import DELTA_TYPES, INIT_DEPTH_PROFILES, INITS, ResNetEnsemble, along_depth, resolve_device

#: Every activation of the engine: the float64 autograd checks below cover each of them.
ACTS = sorted(ACTIVATIONS)


def _net(delta, act, depth=9, dim=5, seeds=range(3), init="xavier", sd=1.0):
    return ResNetEnsemble.initialise(
        depth, dim, list(seeds), delta_type=delta, init=init, init_sd=sd, activation=act,
        alpha=0.5, key="test", dtype=torch.float64,
    )


@pytest.mark.parametrize("delta,act", list(itertools.product(DELTA_TYPES, ACTS)))
def test_adjoint_gradients_equal_autograd(delta, act):
    net = _net(delta, act)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 7, 5, generator=gen, dtype=torch.float64)
    loss, grads = net.loss_and_grad(x, y)

    leaves = {k: v.clone().requires_grad_(True) for k, v in net.params.items()}
    reference = ResNetEnsemble(leaves, delta, act, alpha=0.5)
    ref_loss = reference.loss(x, y)
    ref_loss.sum().backward()
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-13, atol=0)
    assert set(grads) == set(leaves)
    for name, leaf in leaves.items():
        rel = (grads[name] - leaf.grad).norm() / leaf.grad.norm()
        assert rel < 1e-10, f"{name}: relative error {rel:.2e}"


@pytest.mark.parametrize("delta", ["shared", "multi"])
def test_adjoint_states_equal_autograd(delta):
    """p_k = ∂ℓ/∂h_k for every k (docs/maths.md §5), not only the weight gradients."""
    net = _net(delta, "softplus0", depth=6)
    x = torch.randn(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    traj = net.trajectory(x)
    hs = [traj.h[0].clone().requires_grad_(True)]
    A, b, dl = net.params["A"], net.params["b"], net.deltas()
    for k in range(net.depth):
        z = torch.baddbmm(b[k].unsqueeze(1), hs[-1], A[k].transpose(1, 2))
        nxt = hs[-1] + dl[k].view(-1, 1, 1) * net.activation.fn(z)
        nxt.retain_grad()
        hs.append(nxt)
    (hs[-1] ** 2).sum().backward()
    _, P = net.adjoint(traj, 2 * traj.h[-1], keep_adjoint=True)
    for k in range(net.depth + 1):
        torch.testing.assert_close(P[k], hs[k].grad, rtol=1e-12, atol=1e-14)


def test_trajectory_matches_forward():
    net = _net("multi", "tanh")
    x = torch.randn(11, 5, dtype=torch.float64)
    torch.testing.assert_close(net.trajectory(x).h[-1], net.forward(x), rtol=0, atol=0)


@pytest.mark.parametrize("act", ACTS)
def test_evaluation_pass_equals_the_differentiable_pass(act):
    """The in-place evaluation pass gives exactly the numbers of the autograd-ready one."""
    net = _net("multi", act, depth=12)
    x = torch.randn(3, 11, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    leaves = {k: v.clone().requires_grad_(True) for k, v in net.params.items()}
    differentiable = ResNetEnsemble(leaves, "multi", act, alpha=0.5).forward(x)
    assert torch.equal(net.forward(x), differentiable.detach())


def test_reused_workspace_follows_parameter_updates_and_replacements():
    """Gradients from the reused work tensors and cached per-layer views equal those of a fresh
    ensemble after the parameters are changed in place and after one is replaced."""
    net = _net("shared", "tanh", depth=7)
    gen = torch.Generator().manual_seed(5)
    x, y = (torch.randn(3, 6, 5, generator=gen, dtype=torch.float64) for _ in range(2))
    net.loss_and_grad(x, y)
    net.params["A"].mul_(1.5)
    net.params["b"] = net.params["b"] + 0.1
    loss, grads = net.loss_and_grad(x, y)
    fresh = ResNetEnsemble({k: v.clone() for k, v in net.params.items()}, "shared", "tanh", alpha=0.5)
    fresh_loss, fresh_grads = fresh.loss_and_grad(x, y)
    assert torch.equal(loss, fresh_loss)
    for name in grads:
        assert torch.equal(grads[name], fresh_grads[name]), name


def test_seed_networks_do_not_depend_on_the_ensemble():
    together = _net("multi", "tanh", seeds=range(4))
    alone = _net("multi", "tanh", seeds=[2])
    for name in together.params:
        assert torch.equal(together.params[name][:, 2:3], alone.params[name])


@pytest.mark.parametrize("init", INITS)
def test_initialisation_scales(init):
    depth, dim, sd = 64, 10, 0.5
    net = _net("multi", "tanh", depth=depth, dim=dim, seeds=range(8), init=init, sd=sd)
    expected_a = {"xavier": sd / dim, "xavier-depth": sd / (depth * dim), "iid-sqrt-depth": sd / (dim * depth) ** 0.5,
                  "gaussian": sd}
    emp = float(net.params["A"].std())
    assert emp == pytest.approx(expected_a[init], rel=0.03)
    delta = net.params["delta"]
    assert float(delta.std()) == pytest.approx(1 / depth, rel=0.05)
    shared = _net("shared", "tanh", depth=depth, seeds=range(2), init=init)
    assert torch.allclose(shared.deltas(), torch.full((depth, 2), 1 / depth, dtype=torch.float64))


def test_numpy_round_trip_uses_the_paper_convention():
    net = _net("shared", "tanh")
    arrays = net.to_numpy()
    assert arrays["A"].shape == (3, 9, 5, 5) and arrays["delta"].shape == (3, 9)
    # z = A h + b with column vectors: check one layer against the engine's row form
    x = np.random.default_rng(0).normal(size=5)
    z_paper = arrays["A"][1, 0] @ x + arrays["b"][1, 0]
    z_engine = torch.as_tensor(x) @ net.params["A"][0, 1].T + net.params["b"][0, 1]
    np.testing.assert_allclose(z_paper, z_engine.numpy(), rtol=1e-14)
    again = ResNetEnsemble.from_numpy(arrays["A"], arrays["b"], arrays["delta"], "shared", "tanh")
    for name in net.params:
        torch.testing.assert_close(again.params[name], net.params[name])


def test_device_auto_is_cpu_without_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_bad_delta_type_is_named():
    with pytest.raises(ValueError, match="'sometimes'"):
        _net("sometimes", "tanh")


def _autograd_check(net, act):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(net.n_seeds, 7, net.dim, generator=gen, dtype=torch.float64)
    y = torch.randn(net.n_seeds, 7, net.dim, generator=gen, dtype=torch.float64)
    loss, grads = net.loss_and_grad(x, y)
    leaves = {k: v.clone().requires_grad_(True) for k, v in net.params.items()}
    reference = ResNetEnsemble(leaves, net.delta_type, act, alpha=net.alpha)
    ref_loss = reference.loss(x, y)
    ref_loss.sum().backward()
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-13, atol=0)
    assert set(grads) == set(leaves)
    for name, leaf in leaves.items():
        rel = (grads[name] - leaf.grad).norm() / leaf.grad.norm()
        assert rel < 1e-10, f"{name}: relative error {rel:.2e}"


@pytest.mark.parametrize("profile,delta,act", list(itertools.product(INIT_DEPTH_PROFILES, DELTA_TYPES, ["tanh", "relu"])))
def test_depth_profiles_adjoint_equals_autograd(profile, delta, act):
    net = ResNetEnsemble.initialise(9, 5, range(3), delta_type=delta, init="xavier", init_sd=1.0, activation=act,
                                    alpha=0.5, key="test", dtype=torch.float64, depth_profile=profile)
    _autograd_check(net, act)


@pytest.mark.parametrize("delta,act,hidden", list(itertools.product(DELTA_TYPES, ACTS, [3, 8])))
def test_two_matrix_block_adjoint_equals_autograd(delta, act, hidden):
    """h + δ V σ(W h + b) with a hidden width different from d: every gradient, V and δ included."""
    net = ResNetEnsemble.initialise(9, 5, range(3), delta_type=delta, init="xavier", init_sd=1.0, activation=act,
                                    alpha=0.5, key="test", dtype=torch.float64, block="two-matrix",
                                    hidden_width=hidden, depth_profile="smooth")
    assert net.params["A"].shape == (9, 3, hidden, 5) and net.params["V"].shape == (9, 3, 5, hidden)
    _autograd_check(net, act)


def test_two_matrix_adjoint_states_equal_autograd():
    net = ResNetEnsemble.initialise(6, 4, range(2), delta_type="multi", init="xavier", init_sd=1.0,
                                    activation="tanh", key="t", dtype=torch.float64, block="two-matrix", hidden_width=7)
    x = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    traj = net.trajectory(x)
    hs = [traj.h[0].clone().requires_grad_(True)]
    A, b, V, dl = net.params["A"], net.params["b"], net.params["V"], net.deltas()
    for k in range(net.depth):
        z = torch.baddbmm(b[k].unsqueeze(1), hs[-1], A[k].transpose(1, 2))
        nxt = hs[-1] + dl[k].view(-1, 1, 1) * torch.tanh(z) @ V[k].transpose(1, 2)
        nxt.retain_grad()
        hs.append(nxt)
    (hs[-1] ** 2).sum().backward()
    _, P = net.adjoint(traj, 2 * traj.h[-1], keep_adjoint=True)
    for k in range(net.depth + 1):
        torch.testing.assert_close(P[k], hs[k].grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(traj.h[-1], net.forward(x), rtol=1e-13, atol=1e-15)


def test_iid_profile_keeps_the_original_draws():
    """The default profile draws exactly as before the profiles existed: randn A, then b, then δ."""
    from resnet_scaling.io import stable_seed

    net = _net("multi", "tanh", depth=5, dim=3, seeds=[1])
    gen = torch.Generator().manual_seed(stable_seed("test", 5, 1, "init"))
    A = torch.randn(5, 3, 3, generator=gen, dtype=torch.float64) * (1.0 / 3)
    b = torch.randn(5, 3, generator=gen, dtype=torch.float64) * (1.0 / 3**0.5)
    delta = torch.randn(5, generator=gen, dtype=torch.float64) / 5
    assert torch.equal(net.params["A"][:, 0], A) and torch.equal(net.params["b"][:, 0], b)
    assert torch.equal(net.params["delta"][:, 0], delta)


@pytest.mark.parametrize("profile", INIT_DEPTH_PROFILES)
def test_depth_profiles_shape_the_path(profile):
    """Marginal law of one layer as for iid (Brownian: at the last layer); increments of size
    1 (iid), π/L (smooth) and L^{-1/2} (Brownian); δ draws do not depend on the profile."""
    L, n = 64, 4000
    G = along_depth(torch.randn(L, n, dtype=torch.float64, generator=torch.Generator().manual_seed(3)), profile)
    last_sd = float(G[-1].std())
    assert last_sd == pytest.approx(1.0, rel=0.06)
    increment = float(torch.diff(G, dim=0).pow(2).mean().sqrt())
    expected = {"iid": 2**0.5, "smooth": 2 * np.sin(np.pi / (2 * L)), "brownian": L**-0.5, "tied": 0.0}[profile]
    assert increment == pytest.approx(expected, rel=0.06, abs=0.0)
    kw = dict(delta_type="multi", init="xavier", key="k", dtype=torch.float64)
    shaped = ResNetEnsemble.initialise(8, 3, range(2), depth_profile=profile, **kw)
    assert torch.equal(shaped.params["delta"], ResNetEnsemble.initialise(8, 3, range(2), **kw).params["delta"])


@pytest.mark.parametrize("block", ["one-matrix", "two-matrix"])
def test_new_options_do_not_depend_on_the_ensemble(block):
    kw = dict(delta_type="shared", init="xavier", key="k", dtype=torch.float64, depth_profile="brownian",
              block=block, hidden_width=6)
    together = ResNetEnsemble.initialise(7, 4, range(3), **kw)
    alone = ResNetEnsemble.initialise(7, 4, [2], **kw)
    for name in together.params:
        assert torch.equal(together.params[name][:, 2:3], alone.params[name])


def test_two_matrix_numpy_round_trip():
    net = ResNetEnsemble.initialise(5, 4, range(2), delta_type="multi", init="xavier", key="k",
                                    dtype=torch.float64, block="two-matrix", hidden_width=6)
    arrays = net.to_numpy()
    assert arrays["A"].shape == (2, 5, 6, 4) and arrays["V"].shape == (2, 5, 4, 6)
    again = ResNetEnsemble.from_numpy(arrays["A"], arrays["b"], arrays["delta"], "multi", "tanh", V=arrays["V"])
    for name in net.params:
        torch.testing.assert_close(again.params[name], net.params[name])


def test_marion_initialisation_zero_V_tied_W_no_bias():
    """V₀ = 0, one standard Gaussian W₀ for every layer, b = 0 (Marion et al. 2024); the draws
    of W are those of the i.i.d. profile's first layer."""
    kw = dict(delta_type="fixed", init="gaussian", init_sd=1.0, activation="gelu", key="k", dtype=torch.float64,
              block="two-matrix", hidden_width=32)
    net = ResNetEnsemble.initialise(16, 16, range(3), depth_profile="tied", v_init="zero", bias=False, **kw)
    W, V, b = net.params["A"], net.params["V"], net.params["b"]
    assert torch.equal(V, torch.zeros_like(V)) and torch.equal(b, torch.zeros_like(b))
    assert torch.equal(W, W[:1].expand_as(W))
    iid = ResNetEnsemble.initialise(16, 16, range(3), depth_profile="iid", **kw)
    assert torch.equal(W[0], iid.params["A"][0])
    assert float(W.std()) == pytest.approx(1.0, rel=0.05)


def test_zero_V_does_not_fit_the_one_matrix_block():
    with pytest.raises(ValueError, match="v_init 'zero' does not fit the one-matrix block"):
        ResNetEnsemble.initialise(4, 3, range(1), delta_type="fixed", init="xavier", key="k", v_init="zero")
