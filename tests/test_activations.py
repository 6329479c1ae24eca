"""σ', σ'(0), σ''(0) of every activation against autograd and finite differences."""

import pytest
import torch

from resnet_scaling.training.activations import ACTIVATIONS, get_activation


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_autograd(name):
    act = get_activation(name)
    z = torch.linspace(-3, 3, 601, dtype=torch.float64)
    z = z[z.abs() > 1e-3]  # ReLU has no derivative at 0
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(act.fn(z).sum(), z)
    torch.testing.assert_close(act.grad(z.detach()), grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["tanh", "identity", "softplus0"])
def test_taylor_coefficients_at_zero(name):
    act = get_activation(name)
    h = 1e-4
    z = torch.tensor([-h, 0.0, h], dtype=torch.float64)
    f = act.fn(z)
    assert float(f[1]) == pytest.approx(act.value_at_0, abs=1e-14)
    assert float((f[2] - f[0]) / (2 * h)) == pytest.approx(act.slope_at_0, abs=1e-8)
    assert float((f[2] - 2 * f[1] + f[0]) / h**2) == pytest.approx(act.curvature_at_0, abs=1e-6)


def test_relu_and_softplus_constants():
    relu = get_activation("relu")
    assert (relu.value_at_0, relu.slope_at_0, relu.smooth) == (0.0, 1.0, False)
    assert get_activation("softplus0").curvature_at_0 == 0.25


def test_unknown_activation_names_the_value():
    with pytest.raises(ValueError, match="'sigmoid'"):
        get_activation("sigmoid")
