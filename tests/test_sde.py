"""The solver core (docs/maths.md §4, §7): each scheme against the order it declares, on
problems with known answers (tests/problems.py), and names refused clearly."""

from __future__ import annotations

import pytest
import torch

from problems import GeometricBrownianMotion, LinearODE, slope
from resnet_scaling import sde
from resnet_scaling.limits import RATE_DIFFUSIVE, RATE_NEURAL_ODE

TOL = 0.2


def test_unknown_method_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown method 'rk5'.*euler, rk4"):
        sde.solve_neural_ode(torch.zeros(2, 2), torch.zeros(2), torch.ones(1, 2), "tanh", 4, method="rk5")
    with pytest.raises(ValueError, match="ito_euler_maruyama"):
        sde.get_scheme("milstein")


@pytest.mark.parametrize("method", ["rk4", "euler"])
def test_ode_schemes_have_their_declared_order(method):
    problem = LinearODE.random()
    y0 = torch.as_tensor(problem.y0, dtype=torch.float64)
    ns = [4, 8, 16, 32]
    errors = [(sde.solve_ode(lambda t, k, y: problem.field(t, y), y0, torch.linspace(0, 1, n + 1, dtype=torch.float64),
                             method)[-1] - problem.exact()).abs().max().item() for n in ns]
    assert abs(slope(ns, errors) + sde.get_scheme(method).strong_order) < TOL, errors


def _gbm_euler_maruyama(problem: GeometricBrownianMotion, dW_fine: torch.Tensor, n: int) -> torch.Tensor:
    """X_1 of Euler–Maruyama with n steps on the block sums of the fine increments."""
    dW = dW_fine.reshape(n, -1, dW_fine.shape[1]).sum(1)
    dt = 1.0 / n

    def increment(t, dt, x, gen):
        return problem.mu * x * dt + problem.sigma * x * dW[round(t * n)]

    advance = lambda k, x: sde.euler_maruyama_step(increment, k * dt, dt, x, None)
    return sde.final(advance, torch.full((dW.shape[1],), problem.x0, dtype=torch.float64), n)


def test_euler_maruyama_has_its_declared_strong_and_weak_orders():
    problem = GeometricBrownianMotion()
    ns = [8, 16, 32, 64, 128]
    dW = problem.brownian_increments(20000, 512, seed=0)
    exact = problem.exact(dW)
    strong, weak = [], []
    for n in ns:
        x = _gbm_euler_maruyama(problem, dW, n)
        strong.append((x - exact).abs().mean().item())
        weak.append(abs((x - exact).mean().item()))  # same paths: E X_1^n − E X_1 with little noise
    scheme = sde.get_scheme("euler_maruyama")
    assert abs(slope(ns, strong) + scheme.strong_order) < TOL, strong
    assert abs(slope(ns, weak) + scheme.weak_order) < TOL, weak


def test_network_rates_are_the_orders_of_the_schemes_it_is():
    """The network is the Euler scheme of its neural ODE and the Euler–Maruyama scheme of its
    Itô SDE (docs/maths.md §4), so their errors fall at those orders."""
    assert RATE_NEURAL_ODE == -sde.get_scheme("euler").strong_order
    assert RATE_DIFFUSIVE == -sde.get_scheme("ito_euler_maruyama").strong_order


def test_backward_loop_records_every_step_in_place():
    out = sde.integrate(lambda k, y: y + k, torch.zeros(()), 3, reverse=True)
    assert out.tolist() == [3.0, 3.0, 2.0, 0.0]
    with pytest.raises(ValueError, match="must divide"):
        sde.integrate(lambda k, y: y, torch.zeros(()), 3, record_every=2)
