"""The plateau of ReLU networks with a per-layer δ: the floor of networks whose blocks only add,
and the signs of δ_k (docs/results.md, the stalled ReLU band)."""

import numpy as np
import pytest
import torch

from resnet_scaling.scaling.plateau import delta_signs, nonnegative_floor, only_adds
from resnet_scaling.training.resnet import ResNetEnsemble
from resnet_scaling.scaling.weights import TrainedWeights


def test_nonnegative_floor_counts_only_the_negative_part():
    x = np.zeros((2, 2))
    y = np.array([[1.0, -2.0], [-1.0, 3.0]])
    assert nonnegative_floor(x, y) == pytest.approx((4.0 + 1.0) / 4)


def test_delta_signs():
    delta = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 2.0, 3.0, -4.0]])
    signs = delta_signs(delta)
    np.testing.assert_allclose(signs["negative_share"], [0.5, 0.25])
    np.testing.assert_allclose(signs["sign_change_share"], [1.0, 1 / 3])


def _relu_network(delta):
    rng = np.random.default_rng(0)
    S, L = delta.shape
    return TrainedWeights(rng.normal(size=(S, L, 3, 3)), rng.normal(size=(S, L, 3)), delta, np.arange(S),
                          np.array(["stopped"] * S), "e", L, "multi", "relu")


def test_relu_blocks_with_positive_deltas_only_add_and_cannot_beat_the_floor():
    """With every δ_k > 0 each ReLU block adds a non-negative vector: h_L ≥ x, and the loss on
    any targets is at least their non-negative floor; one negative δ_k lifts the bound."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    y = x + rng.normal(size=(40, 3))
    positive = _relu_network(np.abs(rng.normal(size=(2, 16))) / 16)
    assert only_adds(positive, x).all()
    net = ResNetEnsemble.from_numpy(positive.A, positive.b, positive.delta, "multi", "relu")
    loss = net.loss(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    assert (loss >= nonnegative_floor(x, y)).all()
    mixed = positive.delta.copy()
    mixed[:, 3] = -1.0
    assert not only_adds(_relu_network(mixed), x).any()


def test_the_initial_delta_law():
    """δ_k ~ N(0, 1/L²) by default (the original study), N(0, delta_init_sd²) when set, from the
    same draws; the other weights are unchanged."""
    L = 64
    default = ResNetEnsemble.initialise(L, 3, range(2), delta_type="multi", activation="relu", key="k",
                                        dtype=torch.float64)
    wider = ResNetEnsemble.initialise(L, 3, range(2), delta_type="multi", activation="relu", key="k",
                                      dtype=torch.float64, delta_init_sd=0.01)
    torch.testing.assert_close(wider.params["delta"], default.params["delta"] * L * 0.01, rtol=1e-12, atol=0)
    torch.testing.assert_close(wider.params["A"], default.params["A"], rtol=0, atol=0)
