"""Tabulated coefficients: linear interpolation, exactly the table at its own times."""

import numpy as np
import pytest
import torch

from resnet_scaling.sde.coefficients import Tabulated


@pytest.mark.parametrize("ts", [np.linspace(0, 1, 2 * 9100 + 1), np.linspace(0, 1, 4), np.sort(np.r_[0, 1, np.random.default_rng(0).uniform(0, 1, 20)])])
def test_interpolates_linearly_and_returns_the_table_at_grid_times(ts):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(len(ts), 2, 3))
    tab = Tabulated(ts, values)
    for j in list(range(0, len(ts), max(1, len(ts) // 50))) + [len(ts) - 1]:  # grid times: the value itself
        assert torch.equal(tab(ts[j]), torch.as_tensor(values[j]))
    queries = np.r_[rng.uniform(-0.1, 1.1, 200), ts[:: max(1, len(ts) // 30)] + 1e-13]
    for t in queries:
        want = np.stack([np.interp(min(max(t, ts[0]), ts[-1]), ts, values[:, i, k]) for i in range(2) for k in range(3)])
        np.testing.assert_allclose(tab(t).numpy().reshape(-1), want, rtol=1e-12, atol=1e-12)


def test_one_time_is_a_constant():
    tab = Tabulated([0.5], np.ones((1, 2)))
    assert torch.equal(tab(0.0), torch.ones(2, dtype=torch.float64))
