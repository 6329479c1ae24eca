"""The compiled loops of the forward-backward paths (resnet_scaling.sde.compiled): the limit
systems' RK4 loops against the Python loop, the network's adjoint against float64 autograd and
the per-layer engine, the choice of engine, and a library that cannot be built or is damaged."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from resnet_scaling import limits
from resnet_scaling.sde import compiled
from resnet_scaling.fbsde.backprop import network_backprop
from resnet_scaling.fbsde.ode import ode_backprop
from resnet_scaling.limits.signatures import fine_paths

pytestmark = pytest.mark.skipif(compiled.library() is None, reason="the compiled loops cannot be built here")

# (steps or layers, networks, inputs, width): widths below, at and off a multiple of 4
SHAPES = [(7, 3, 5, 3), (40, 2, 16, 25), (25, 1, 4, 8)]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _limit_coefficients(n, P, N, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    A = randn(2 * n + 1, P, d, d) / d**0.5
    b = randn(2 * n + 1, P, d)
    delta = torch.rand(2 * n + 1, P, generator=gen, dtype=torch.float64) + 0.5
    return A, b, delta, randn(N, d), randn(N, d)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind, activation", [("neural_ode", "tanh"), ("neural_ode", "relu"), ("linear_ode", "tanh"),
                                              ("linear_ode", "softplus0")])
def test_limit_loops_are_the_python_loops_to_rounding(shape, kind, activation):
    """Same stages, same coefficient indices: states and adjoints agree to a few ulps."""
    n, P, N, d = shape
    A, b, delta, x, y = _limit_coefficients(n, P, N, d)
    extra = {"delta_half": delta} if kind == "neural_ode" else {}
    ref = ode_backprop(kind, A, b, x, y, activation, loss_scale=0.7, engine="python", **extra)
    got = ode_backprop(kind, A, b, x, y, activation, loss_scale=0.7, engine="compiled", **extra)
    assert _relative(got.h, ref.h) < 1e-14
    assert _relative(got.p, ref.p) < 1e-14
    if kind == "neural_ode":
        torch.testing.assert_close(got.slope, ref.slope, rtol=1e-13, atol=1e-15)


def _network(P, L, N, d, seed=3):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(P, L, d, d)) * 0.4
    b = rng.normal(size=(P, L, d)) * 0.3
    delta = rng.normal(size=(P, L)) * 0.5
    return A, b, delta, rng.normal(size=(N, d)), rng.normal(size=(N, d))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_network_adjoint_is_float64_autograd(activation):
    """p_0 = ∂ℓ/∂x, δ_k ∂ℓ/∂M_k = ∂ℓ/∂A_k, δ_k ∂ℓ/∂m_k = ∂ℓ/∂b_k of ℓ = (c/2) Σ |h_L − y|²."""
    P, L, N, d = 2, 6, 4, 5
    A, b, delta, x, y = _network(P, L, N, d)
    net = network_backprop(A, b, delta, activation, x, y, loss_scale=0.7, engine="compiled")
    AA, bb = torch.tensor(A, requires_grad=True), torch.tensor(b, requires_grad=True)
    xx = torch.tensor(x).expand(P, N, d).clone().requires_grad_(True)
    sigma = torch.tanh if activation == "tanh" else torch.relu
    h = xx
    for k in range(L):
        h = h + torch.tensor(delta)[:, k, None, None] * sigma(torch.matmul(h, AA[:, k].transpose(1, 2)) + bb[:, k, None, :])
    gx, gA, gb = torch.autograd.grad(0.35 * ((h - torch.tensor(y)) ** 2).sum(), [xx, AA, bb])
    torch.testing.assert_close(net.h[-1], h.detach(), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(net.p[0], gx, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close((net.grad_M * net.delta[..., None, None]).transpose(0, 1), gA, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close((net.grad_m * net.delta[..., None]).transpose(0, 1), gb, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_network_paths_are_the_per_layer_engines_to_rounding(shape, activation):
    L, P, N, d = shape
    A, b, delta, x, y = _network(P, L, N, d, seed=L)
    delta = delta / np.sqrt(L)
    ref = network_backprop(A, b, delta, activation, x, y, loss_scale=0.3, engine="python")
    got = network_backprop(A, b, delta, activation, x, y, loss_scale=0.3, engine="compiled")
    for name in ("h", "p", "grad_M", "grad_m", "delta"):
        assert _relative(getattr(got, name), getattr(ref, name)) < 1e-13, name
    paths = fine_paths(A, b, delta, activation, x, y)
    assert torch.equal(paths.h, got.h) and torch.equal(paths.p, network_backprop(A, b, delta, activation, x, y, loss_scale=1.0).p)
    bare = network_backprop(A, b, delta, activation, x, y, gradients=False, engine="compiled")
    assert bare.grad_M is None and torch.equal(bare.p, network_backprop(A, b, delta, activation, x, y, engine="compiled").p)


def test_engine_choice():
    A, b, delta, x, y = _limit_coefficients(4, 1, 2, 3)
    with pytest.raises(RuntimeError, match="activation 'softplus0'"):
        ode_backprop("neural_ode", A, b, x, y, "softplus0", delta_half=delta, engine="compiled")
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        ode_backprop("linear_ode", A, b, x, y, "tanh", engine="gpu")
    # auto: the Python loop for an activation the compiled loops do not evaluate, the same numbers as asked for
    auto = ode_backprop("neural_ode", A, b, x, y, "softplus0", delta_half=delta)
    assert torch.equal(auto.p, ode_backprop("neural_ode", A, b, x, y, "softplus0", delta_half=delta, engine="python").p)
    assert compiled.library().rs_rk4_instruction_set() in (0, 1)


def _console_notes(capfd) -> list[str]:
    return list(dict.fromkeys(line for line in capfd.readouterr().err.splitlines() if "compiled path loops" in line))


@pytest.fixture
def cache_copy(tmp_path, monkeypatch):
    """A private copy of the built library's folder made the extension cache of a fresh process state."""
    built = compiled.build_directory()
    folder = tmp_path / "ext" / built.name
    shutil.copytree(built, folder, ignore=shutil.ignore_patterns("*.lock", "lock"))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(compiled, "_state", {})
    return folder / f"{built.name}.so"


def test_a_damaged_library_is_rebuilt_and_loads(cache_copy, capfd):
    whole = cache_copy.read_bytes()
    record = json.loads((cache_copy.parent / "library.json").read_text())
    assert record == {"file": cache_copy.name, "size": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}
    cache_copy.write_bytes(whole[:1000])
    lib = compiled.library()
    assert lib is not None and lib.rs_rk4_instruction_set() in (0, 1)
    notes = _console_notes(capfd)
    assert len(notes) == 1 and str(cache_copy) in notes[0] and "rebuilt and loads" in notes[0], notes


def test_without_a_compiler_the_python_loop_solves_the_limits(cache_copy, capfd, monkeypatch, tmp_path):
    """auto falls back with one line saying why; compiled is an error naming it; the numbers are the Python loop's."""
    cache_copy.write_bytes(b"")
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    A, b, delta, x, y = _limit_coefficients(5, 2, 3, 4)
    lim = ode_backprop("neural_ode", A, b, x, y, "tanh", delta_half=delta)
    assert torch.equal(lim.p, ode_backprop("neural_ode", A, b, x, y, "tanh", delta_half=delta, engine="python").p)
    notes = _console_notes(capfd)
    assert len(notes) == 1 and "no-such-compiler" in notes[0] and "Python loops" in notes[0], notes
    A, b, delta, x, y = _network(1, 3, 2, 3)
    with pytest.raises(RuntimeError, match="no-such-compiler"):
        network_backprop(A, b, delta, "tanh", x, y, engine="compiled")


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_network_states_and_outputs_are_the_torch_loops_to_rounding(activation, monkeypatch):
    """limits.network on the compiled loops (states, or the outputs alone) against its torch loop."""
    from resnet_scaling.limits import network

    A, b, delta, x, _ = _network(3, 40, 6, 25, seed=9)
    delta = delta[0] / 40  # one δ_k sequence shared by the networks
    states, outputs = network.network_states(A, b, delta, activation, x), network.network_outputs(A, b, delta, activation, x)
    assert torch.equal(states[-1], outputs)
    monkeypatch.setattr(network, "ENGINE", "python")
    ref = network.network_states(A, b, delta, activation, x)
    assert _relative(states, ref) < 1e-14
    assert _relative(outputs, network.network_outputs(A, b, delta, activation, x)) < 1e-14


@pytest.mark.parametrize("kind", ["neural_ode", "linear_ode"])
def test_half_grid_solver_is_the_coefficient_function_solver(kind):
    """sde.ode.solve_on_half_grid with the coefficients tabulated at j/(2n) (compiled and torch
    loops) against sde.ode's solvers evaluating the same smooth coefficient functions step by step."""
    from resnet_scaling.sde.ode import half_grid, solve_linear_ode, solve_neural_ode, solve_on_half_grid

    P, d, N, n = 2, 3, 4, 50
    wp = limits.synthetic_weight_paths(kind, 16, P, d, 0, beta=0.5)
    x = torch.randn(N, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ts = half_grid(n)
    A_half, b_half = wp.limit_A.on_grid(ts), wp.limit_b.on_grid(ts)
    if kind == "neural_ode":
        ref = solve_neural_ode(wp.limit_A, wp.limit_b, x, "tanh", n)
    else:
        ref = solve_linear_ode(wp.limit_A, wp.limit_b, x, n, gain=0.5)
    activation = "tanh" if kind == "neural_ode" else "softplus0"  # σ'(0) = 1/2 for the linear ODE
    for engine in ("compiled", "python"):
        got = solve_on_half_grid(kind, A_half, b_half, x, activation, engine=engine)
        assert _relative(got, ref) < 1e-13, engine


@pytest.mark.parametrize("activation", ["tanh", "relu", "identity"])
def test_per_step_coefficients_on_an_uneven_grid_are_the_torch_loop_to_rounding(activation, monkeypatch):
    """sde.ode.solve_neural_ode with coefficients constant on each step (coarsened weights) and
    steps of uneven length: one compiled call against the step-by-step torch loop."""
    from resnet_scaling.sde import ode
    from resnet_scaling.sde.coefficients import PerStep

    gen = torch.Generator().manual_seed(6)
    n, P, d, N = 13, 3, 5, 4
    A = PerStep(torch.randn(n, P, d, d, generator=gen, dtype=torch.float64) / 3)
    b = PerStep(torch.randn(n, d, generator=gen, dtype=torch.float64))  # shared by the paths
    delta = PerStep(torch.rand(n, P, generator=gen, dtype=torch.float64) + 0.5)
    x = torch.randn(N, d, generator=gen, dtype=torch.float64)
    ts = torch.tensor(np.unique(np.round(np.linspace(0, 100, n + 1))) / 100.0, dtype=torch.float64)
    got = ode.solve_neural_ode(A, b, x, activation, delta=delta, ts=ts)
    monkeypatch.setattr(compiled, "select", lambda engine, act: None)
    ref = ode.solve_neural_ode(A, b, x, activation, delta=delta, ts=ts)
    assert got.shape == ref.shape == (n + 1, P, N, d)
    assert _relative(got, ref) < 1e-14


def test_the_loops_tanh_is_within_two_ulps_of_torchs():
    """The loops' tanh of doubles (from SLEEF's expm1 with AVX2, the C library's otherwise), read
    through a one-layer network whose second coordinate is exactly tanh(z): within 2 ulps of
    torch.tanh over [-30, 30] and down to 1e-300, ±1 at ±∞, NaN kept."""
    z = torch.cat([torch.linspace(-30, 30, 200001, dtype=torch.float64),
                   torch.logspace(-300, 1.3, 20000, dtype=torch.float64),
                   -torch.logspace(-300, 1.3, 20000, dtype=torch.float64),
                   torch.tensor([float("inf"), -float("inf"), float("nan")], dtype=torch.float64)])
    A = np.array([[[[0.0, 0.0], [1.0, 0.0]]]])  # h_1 = (z, 0 + tanh(z)) for the input (z, 0)
    x = torch.stack([z, torch.zeros_like(z)], -1).unsqueeze(0)
    got = compiled.network_output(compiled.library(), A, np.zeros((1, 1, 2)), np.ones((1, 1)), x, "tanh")[0, :, 1]
    ref = torch.tanh(z)
    finite = torch.isfinite(z)
    ulps = (got - ref)[finite].abs() / (ref[finite].abs() * 2.0**-52).clamp_min(2.0**-1074)
    assert float(ulps.max()) <= 2.0
    assert got[-3:-1].tolist() == [1.0, -1.0] and torch.isnan(got[-1])
