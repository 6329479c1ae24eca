"""Fractional Gaussian noise of Hurst index H, drawn exactly (docs/maths.md §6)."""

from __future__ import annotations

import numpy as np
import torch

from ..sde.tensors import DTYPE
from .sampling import randn32


def fgn_autocovariance(lags, hurst: float) -> np.ndarray:
    """γ(k) = ½(|k+1|^{2H} − 2|k|^{2H} + |k−1|^{2H}) of unit-variance fGn."""
    k = np.abs(np.asarray(lags, dtype=float))
    h2 = 2.0 * hurst
    return 0.5 * ((k + 1) ** h2 - 2 * k**h2 + np.abs(k - 1) ** h2)


def fgn(n_series: int, length: int, hurst: float, gen: torch.Generator) -> torch.Tensor:
    """``n_series`` independent unit-variance fGn sequences of ``length``, shape (n_series, length).

    Davies–Harte circulant embedding: the covariance is embedded in a circulant matrix of
    size 2·length whose eigenvalues (an FFT of its first row) are non-negative for fGn
    at every H ∈ (0, 1), so the draw is exact. One complex FFT gives two independent
    sequences (real and imaginary parts); both are used.
    """
    if not 0.0 < hurst < 1.0:
        raise ValueError(f"Hurst index must lie in (0, 1), got {hurst}")
    n, m = length, 2 * length
    gam = torch.as_tensor(fgn_autocovariance(np.arange(n + 1), hurst), dtype=DTYPE)
    row = torch.cat([gam, gam[1:n].flip(0)])
    lam = torch.fft.fft(row).real
    if lam.min() < -1e-8 * lam.abs().max():
        raise RuntimeError(f"circulant embedding not non-negative at H={hurst}")
    scale = torch.sqrt(lam.clamp_min(0.0) / m)
    half = (n_series + 1) // 2
    z = torch.complex(randn32(gen, (half, m)), randn32(gen, (half, m)))
    y = torch.fft.fft(z * scale, dim=-1)[:, :n]
    return torch.cat([y.real, y.imag])[:n_series].contiguous()
