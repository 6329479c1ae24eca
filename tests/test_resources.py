"""Memory requests of the analysis jobs against the peaks measured at both scales."""

import pytest

from resnet_scaling.training.resources import fbsde_trained_mem_mb, limits_fit_mem_mb

# (seeds, deepest depth, width) -> measured peak MB (benchmark max_rss); 32 inputs for fbsde
FBSDE_PEAKS = {(8, 9100, 10): 7375, (8, 9100, 25): 11279, (4, 1024, 10): 1186, (4, 1024, 25): 1186}
LIMITS_PEAKS = {(8, 9100, 10): 3917, (8, 9100, 25): 9235, (4, 1024, 10): 1181, (4, 1024, 25): 1181}


@pytest.mark.parametrize("shape, peak", FBSDE_PEAKS.items())
def test_backward_comparison_request_covers_its_peak_within_a_factor_two(shape, peak):
    assert peak <= fbsde_trained_mem_mb(*shape, n_inputs=32) <= 2 * peak


@pytest.mark.parametrize("shape, peak", LIMITS_PEAKS.items())
def test_limit_fit_request_covers_its_peak_within_a_factor_two(shape, peak):
    assert peak <= limits_fit_mem_mb(*shape) <= 2 * peak


def test_requests_grow_with_depth_width_and_inputs():
    assert fbsde_trained_mem_mb(8, 9100, 25, 32) > fbsde_trained_mem_mb(8, 2116, 25, 32)
    assert fbsde_trained_mem_mb(8, 9100, 25, 64) > fbsde_trained_mem_mb(8, 9100, 25, 32)
    assert limits_fit_mem_mb(8, 9100, 25) > limits_fit_mem_mb(8, 9100, 10)
