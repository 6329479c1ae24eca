"""FFT singular values of convolutions against the explicit dense matrix."""

import time

import numpy as np
import pytest

from resnet_scaling.cnn.operator_norms import conv_singular_values, dense_matrix, operator_norm


@pytest.mark.parametrize("c_out,c_in,k,n,stride", [
    (1, 1, 3, 6, 1), (3, 2, 3, 6, 1), (2, 4, 3, 8, 1), (4, 4, 1, 6, 1),
    (3, 2, 3, 8, 2), (4, 3, 3, 6, 2), (2, 2, 1, 8, 2), (5, 2, 3, 4, 2),
])
def test_fft_singular_values_equal_the_dense_matrix(c_out, c_in, k, n, stride):
    rng = np.random.default_rng(c_out * 100 + c_in * 10 + k + n + stride)
    kernel = rng.normal(size=(c_out, c_in, k, k))
    dense = np.linalg.svd(dense_matrix(kernel, n, stride), compute_uv=False)
    fft = conv_singular_values(kernel, n, stride)
    count = min(len(dense), len(fft))
    np.testing.assert_allclose(fft[:count], dense[:count], rtol=1e-5, atol=1e-9)
    assert operator_norm(kernel, n, stride) == pytest.approx(dense[0], rel=1e-5)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        operator_norm(np.zeros((2, 2, 3)), 8)
    with pytest.raises(ValueError, match="multiple of the stride"):
        operator_norm(np.zeros((2, 2, 3, 3)), 7, stride=2)
