"""Operator norms of convolutions: the FFT method against the SVD of the dense matrix.

At 32 × 32 inputs with 3 × 3 kernels, stride 1 and 2, it times all singular values by the
FFT method (per-frequency transfer matrices) and by the SVD of the explicit dense matrix of
the same circular convolution, measured in the same run, and reports the largest relative
error of the singular values. Last line: ``speedup fft vs dense: <ratio>``.

Usage: python benchmarks/conv_operator_norms.py [--channels 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from resnet_scaling.cnn.operator_norms import conv_singular_values, dense_matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    ratios = []
    for stride in (1, 2):
        kernel = rng.normal(size=(args.channels, args.channels, 3, 3))
        start = time.process_time()
        fft = conv_singular_values(kernel, args.size, stride)
        t_fft = time.process_time() - start
        start = time.process_time()
        dense = np.linalg.svd(dense_matrix(kernel, args.size, stride), compute_uv=False)
        t_dense = time.process_time() - start
        count = min(len(fft), len(dense))
        error = float(np.max(np.abs(fft[:count] - dense[:count]) / dense[0]))
        ratios.append(t_dense / t_fft)
        print(f"n={args.size} c={args.channels} stride {stride}: fft {t_fft * 1e3:.1f} ms, dense SVD "
              f"{t_dense:.2f} s, ratio {t_dense / t_fft:.0f}x, largest relative error {error:.1e}, "
              f"operator norm {fft[0]:.6f} vs {dense[0]:.6f}")
    print(f"speedup fft vs dense: {min(ratios):.0f}")


if __name__ == "__main__":
    main()
