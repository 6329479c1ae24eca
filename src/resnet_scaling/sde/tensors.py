"""Conventions shared by the solvers: float64 tensors, seeded generators, inputs per path, time grids.

Shapes (docs/maths.md §4): weights path-major ``A`` (P, L, d, d), ``b`` (P, L, d); inputs
``x`` (N, d), shared by every path, or (P, N, d); states (n + 1, P, N, d), the initial state first.
"""

from __future__ import annotations

import numpy as np
import torch

from ..training.activations import Activation, get_activation

DTYPE = torch.float64


def as_tensor(a, dtype=DTYPE) -> torch.Tensor:
    """A float64 tensor of ``a`` (tensor, array or number)."""
    return torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a, dtype=dtype)


def as_activation(activation: str | Activation) -> Activation:
    return get_activation(activation) if isinstance(activation, str) else activation


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with the low 63 bits of ``seed``."""
    return torch.Generator().manual_seed(int(seed) & ((1 << 63) - 1))


def path_inputs(x, n_paths: int, dim: int) -> torch.Tensor:
    """Inputs as (P, N, d): a shared (N, d) block is expanded (no copy) over the paths."""
    x = as_tensor(x)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(n_paths, *x.shape)
    if x.shape[0] != n_paths or x.shape[-1] != dim:
        raise ValueError(f"inputs of shape {tuple(x.shape)} do not fit {n_paths} paths of width {dim}")
    return x


def time_grid(n_steps: int | None, ts) -> torch.Tensor:
    """A time grid 0 = t_0 < … < t_n = 1 (uniform with n steps when ``ts`` is None)."""
    if ts is None:
        if n_steps is None:
            raise ValueError("give either n_steps or the time grid ts")
        return torch.linspace(0.0, 1.0, n_steps + 1, dtype=DTYPE)
    ts = as_tensor(ts)
    if ts.dim() != 1 or ts.numel() < 2 or not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("the time grid ts must be a strictly increasing 1-D sequence")
    return ts


def progress(it, enabled: bool, desc: str):
    """``it`` with a progress bar when ``enabled`` (at most one update per 5 s)."""
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, mininterval=5.0)
