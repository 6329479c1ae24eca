"""Singular values and operator norms of 2-D convolutions by the FFT method.

A convolution with a (c_out, c_in, k, k) kernel on n × n inputs with circular padding is a
block-circulant operator, diagonalised by the 2-D discrete Fourier transform: its singular
values are those of the c_out × c_in transfer matrices K̂(u, v) = Σ_a K[:, :, a] e^{-2πi⟨ω, a⟩/n},
one per frequency. With stride s (n divisible by s) the input splits into its s² polyphase
components on the (n/s)² grid, and at each frequency of that grid the transfer matrix is the
c_out × (c_in s²) concatenation of the polyphase kernels' transforms. The operator (spectral)
norm is the largest of all these singular values. For the zero padding of a CNN the same
numbers are the standard approximation (exact for circular padding), as in the original
study's convolutional experiment.
"""

from __future__ import annotations

import numpy as np
import torch


def transfer_matrices(kernel, n: int, stride: int = 1) -> torch.Tensor:
    """The per-frequency transfer matrices, shape (m, m, c_out, c_in·s²) with m = n / s."""
    K = torch.as_tensor(np.asarray(kernel) if not isinstance(kernel, torch.Tensor) else kernel)
    if K.dim() != 4 or K.shape[2] != K.shape[3]:
        raise ValueError(f"kernel must have shape (c_out, c_in, k, k), got {tuple(K.shape)}")
    if stride < 1 or n % stride:
        raise ValueError(f"the input size {n} must be a positive multiple of the stride {stride}")
    c_out, c_in, k, _ = K.shape
    s, m = stride, n // stride
    # polyphase kernels on the m × m grid: tap a = s·q + p goes to phase p, position q (mod m)
    poly = torch.zeros(c_out, c_in, s, s, m, m, dtype=torch.complex128)
    taps = torch.arange(k)
    phase, position = taps % s, (taps // s) % m
    for a1 in range(k):
        for a2 in range(k):
            poly[:, :, phase[a1], phase[a2], position[a1], position[a2]] += K[:, :, a1, a2].to(torch.float64)
    spectrum = torch.fft.fft2(poly)  # (c_out, c_in, s, s, m, m)
    return spectrum.permute(4, 5, 0, 1, 2, 3).reshape(m, m, c_out, c_in * s * s)


def conv_singular_values(kernel, n: int, stride: int = 1) -> np.ndarray:
    """Every singular value of the convolution on n × n inputs, in decreasing order."""
    values = torch.linalg.svdvals(transfer_matrices(kernel, n, stride))
    return np.sort(values.flatten().numpy())[::-1]


def operator_norm(kernel, n: int, stride: int = 1) -> float:
    """The spectral norm of the convolution on n × n inputs (largest singular value)."""
    return float(torch.linalg.matrix_norm(transfer_matrices(kernel, n, stride), ord=2).max())


def dense_matrix(kernel, n: int, stride: int = 1) -> np.ndarray:
    """The explicit (c_out·m², c_in·n²) matrix of the circular convolution (for checks on small sizes)."""
    K = torch.as_tensor(np.asarray(kernel), dtype=torch.float64)
    c_out, c_in, k, _ = K.shape
    basis = torch.eye(c_in * n * n, dtype=torch.float64).reshape(-1, c_in, n, n)
    padded = torch.nn.functional.pad(basis, (0, k - 1, 0, k - 1), mode="circular")
    out = torch.nn.functional.conv2d(padded, K, stride=stride)  # y[i] = Σ_a K[a] x[s i + a], circularly
    return out.reshape(c_in * n * n, -1).T.numpy()
