"""Running sums slice by slice: the bits of cumsum, along any axis, for wide and narrow slices."""

import numpy as np
import pytest

from resnet_scaling import running_sums
from resnet_scaling.running_sums import cumulative_sum


@pytest.mark.parametrize("shape, axis", [((3, 500, 16, 17), 1), ((700, 300), 0), ((4, 9), 1), ((5, 1, 300), 1),
                                         ((0, 300), 0)])
def test_the_bits_of_cumsum(shape, axis):
    values = np.random.default_rng(1).normal(size=shape) * 1e3 + 7.0
    out = np.full(shape, np.nan)
    assert cumulative_sum(values, axis, out) is out
    np.testing.assert_array_equal(out, np.cumsum(values, axis=axis))


def test_wide_slices_are_added_in_order(monkeypatch):
    """A slice-by-slice sum is taken (no call of cumsum) once a slice holds SLICE_LOOP_SIZE elements."""
    def refuse(*args, **kwargs):
        raise AssertionError("cumsum called for wide slices")

    values = np.arange(4 * running_sums.SLICE_LOOP_SIZE, dtype=float).reshape(4, -1)
    monkeypatch.setattr(running_sums.np, "cumsum", refuse)
    out = cumulative_sum(values, 0, np.empty_like(values))
    np.testing.assert_array_equal(out[-1], values.sum(axis=0))
