"""The Epanechnikov smoother: the running-sum kernel average equals the kernel-matrix product,
and the kernel reproduces what it must (constants, linear sequences away from the edges)."""

import numpy as np
import pytest
import torch

from resnet_scaling.sde.smoothing import kernel_matrix, kernel_smooth


def _by_matrix(X, ts, bandwidth):
    X = torch.as_tensor(X, dtype=torch.float64)
    return torch.tensordot(kernel_matrix(ts, X.shape[1], bandwidth), X.transpose(0, 1), dims=([1], [0]))


@pytest.mark.parametrize("L", [1, 2, 7, 100, 1500])
@pytest.mark.parametrize("bandwidth", [1e-4, 0.3, 1.0, 0.05, 2.5])
def test_running_sums_equal_the_kernel_matrix(L, bandwidth):
    rng = np.random.default_rng(L)
    X = rng.normal(size=(3, L, 2, 2)) + 5.0  # an offset: the sums must not lose the small part
    ts = np.concatenate([np.linspace(0, 1, 2 * L + 1), rng.uniform(0, 1, 7), [0.5 / L, 1 - 0.5 / L]])
    ts = torch.as_tensor(ts)[torch.randperm(len(ts), generator=torch.Generator().manual_seed(0))]
    bw = bandwidth if bandwidth != 1.0 else 1.0 / L  # the smallest bandwidth the trained comparison uses
    if bw * L < 0.5:  # empty windows: leave out the times halfway between two centres, where the
        position = ts * L - 0.5  # matrix's nearest centre is decided by rounding (exact ties: next test)
        ts = ts[(position - position.floor() - 0.5).abs() > 1e-9]
    got, want = kernel_smooth(X, ts, bw), _by_matrix(X, ts, bw)
    assert got.shape == (len(ts), 3, 2, 2)
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


def test_windows_without_a_layer_take_the_nearest_one():
    # bandwidth below half a layer spacing: every time between two centres has an empty window
    X = torch.arange(4, dtype=torch.float64).reshape(1, 4)
    ts = torch.tensor([0.0, 0.25, 0.3, 1.0])  # 0.25 is halfway between the centres 0.125 and 0.375
    got = kernel_smooth(X, ts, 0.01)[:, 0]
    torch.testing.assert_close(got, _by_matrix(X, ts, 0.01)[:, 0])
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, 1.0, 3.0], dtype=torch.float64))


def test_constants_stay_and_linear_sequences_stay_linear_inside():
    L, bw = 400, 0.05
    k = (torch.arange(L, dtype=torch.float64) + 0.5) / L
    X = torch.stack([torch.full((L,), 3.0, dtype=torch.float64), 2.0 * k - 1.0])  # (2, L)
    ts = torch.linspace(0.1, 0.9, 33, dtype=torch.float64)  # windows inside [0, 1]: symmetric kernel
    got = kernel_smooth(X, ts, bw)
    torch.testing.assert_close(got[:, 0], torch.full((33,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(got[:, 1], 2.0 * ts - 1.0)


def test_wide_rows_are_summed_row_by_row_in_the_same_order(monkeypatch):
    """Rows of at least SLICE_LOOP_SIZE entries (a 16 × 16 weight matrix and wider) are added one
    at a time: the kernel matrix's answer, and the very bits of a cumsum."""
    from resnet_scaling import running_sums

    L, F = 700, running_sums.SLICE_LOOP_SIZE + 44
    X = torch.randn(2, L, F, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, 2 * L + 1, dtype=torch.float64)
    got = kernel_smooth(X, ts, 0.05)
    torch.testing.assert_close(got, _by_matrix(X, ts, 0.05), rtol=1e-11, atol=1e-11)
    monkeypatch.setattr(running_sums, "SLICE_LOOP_SIZE", 10**9)  # every block through cumsum
    assert torch.equal(got, kernel_smooth(X, ts, 0.05))
