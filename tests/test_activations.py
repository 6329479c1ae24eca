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


@pytest.mark.parametrize("name", ["tanh", "identity", "softplus0", "gelu"])
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


def test_gelu_is_z_times_the_normal_cdf():
    import math

    gelu = get_activation("gelu")
    z = torch.linspace(-4, 4, 81, dtype=torch.float64)
    expected = z * 0.5 * torch.erfc(-z / math.sqrt(2.0))
    torch.testing.assert_close(gelu(z), expected, rtol=1e-14, atol=1e-15)
    density = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    torch.testing.assert_close(gelu.grad(z), 0.5 * torch.erfc(-z / math.sqrt(2.0)) + z * density, rtol=1e-13, atol=1e-15)
    assert gelu.curvature_at_0 == pytest.approx(math.sqrt(2 / math.pi))


def test_the_config_offers_exactly_the_engine_activations():
    """The schema's activation choices are the engine's: an activation it does not know is
    refused before any job runs, with these choices named."""
    from resnet_scaling.config import load_schema

    schema = load_schema()
    experiment = schema["properties"]["experiments"]["additionalProperties"]["properties"]["activation"]
    regimes = schema["properties"]["regimes"]["properties"]["activations"]["items"]
    assert sorted(experiment["enum"]) == sorted(ACTIVATIONS) == sorted(regimes["enum"])
