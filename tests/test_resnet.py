"""The explicit adjoint against torch.autograd in float64; ensemble independence."""

import itertools

import numpy as np
import pytest
import torch

from resnet_scaling.resnet import DELTA_TYPES, INITS, ResNetEnsemble, resolve_device

ACTS = ["tanh", "relu", "identity", "softplus0"]


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


def test_seed_networks_do_not_depend_on_the_ensemble():
    together = _net("multi", "tanh", seeds=range(4))
    alone = _net("multi", "tanh", seeds=[2])
    for name in together.params:
        assert torch.equal(together.params[name][:, 2:3], alone.params[name])


@pytest.mark.parametrize("init", INITS)
def test_initialisation_scales(init):
    depth, dim, sd = 64, 10, 0.5
    net = _net("multi", "tanh", depth=depth, dim=dim, seeds=range(8), init=init, sd=sd)
    expected_a = {"xavier": sd / dim, "xavier-depth": sd / (depth * dim), "iid-sqrt-depth": sd / (dim * depth) ** 0.5}
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
