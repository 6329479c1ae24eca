"""The non-affine share of a network's output, on maps with known answers."""

import numpy as np
import pytest

import scaling_problems as sp
from resnet_scaling.scaling.outputs import affine_residual, network_non_affine_share, network_outputs, non_affine_share
from resnet_scaling.training.resnet import ResNetEnsemble
from resnet_scaling.scaling.statistics import training_table
from resnet_scaling.scaling.weights import TrainedWeights


def test_an_affine_map_has_no_non_affine_share():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    out = x @ rng.normal(size=(4, 3)) + rng.normal(size=3)
    assert non_affine_share(x, out) == pytest.approx(0.0, abs=1e-13)


def test_a_quadratic_map_has_its_known_share():
    """x symmetric about 0: the affine fit of x + c x² is x + c mean(x²), so the residual is
    c (x² − mean x²)."""
    x = np.linspace(-1, 1, 41)[:, None]
    c = 0.3
    out = x + c * x**2
    expected = np.linalg.norm(c * (x**2 - (x**2).mean())) / np.linalg.norm(out)
    assert non_affine_share(x, out) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(affine_residual(x, out), c * (x**2 - (x**2).mean()), atol=1e-14)
    # one fit per leading index
    both = non_affine_share(x, np.stack([out, x]))
    np.testing.assert_allclose(both, [expected, 0.0], atol=1e-14)


def _weights(A, b, delta, activation):
    S = A.shape[0]
    return TrainedWeights(A, b, delta, np.arange(S), np.array(["converged"] * S), "e", A.shape[1], "multi", activation)


def test_relu_networks_whose_units_never_switch_are_affine():
    """ReLU blocks whose units are on for every input (large positive bias) or off for every input
    act as affine maps: share 0; the same blocks with switching units are not affine."""
    rng = np.random.default_rng(1)
    S, L, d = 2, 12, 3
    x = rng.uniform(-1, 1, size=(64, d))
    A = 0.1 * rng.normal(size=(S, L, d, d))
    delta = rng.normal(size=(S, L)) / L
    always_on = _weights(A, np.full((S, L, d), 5.0), delta, "relu")
    off_or_on = _weights(A, np.where(rng.uniform(size=(S, L, d)) < 0.5, -5.0, 5.0), delta, "relu")
    np.testing.assert_allclose(network_non_affine_share(always_on, x), 0.0, atol=1e-13)
    np.testing.assert_allclose(network_non_affine_share(off_or_on, x), 0.0, atol=1e-13)
    switching = _weights(3 * A, np.zeros((S, L, d)), np.ones((S, L)) / L, "relu")
    assert (network_non_affine_share(switching, x) > 1e-3).all()


def test_outputs_are_the_networks_forward_pass_and_diverged_seeds_give_nan():
    w = sp.network("brownian", 16, seeds=3, dim=4)
    x = np.random.default_rng(2).normal(size=(10, 4))
    net = ResNetEnsemble.from_numpy(w.A, w.b, w.delta, "none", w.activation)
    np.testing.assert_allclose(network_outputs(w, x), net.forward(x).numpy(), rtol=1e-12)
    w.A[1, 3, 0, 0] = np.nan
    share = network_non_affine_share(w, x)
    assert np.isnan(share[1]) and np.isfinite(share[[0, 2]]).all()
    table = training_table(w, x)
    assert table["non_affine_share"].isna().tolist() == [False, True, False]
