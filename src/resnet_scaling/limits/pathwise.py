"""Limit equations driven by a trained network's own weights, coarsened to N blocks of layers
(docs/maths.md §4, trained networks (a))."""

from __future__ import annotations

import numpy as np
import torch

from ..sde.coefficients import PerStep, Tabulated
from ..sde.ito import solve_ito_sde
from ..sde.ode import solve_linear_ode, solve_neural_ode
from ..sde.tensors import DTYPE, as_activation, as_tensor
from .coefficients import CoefficientEstimate


def block_edges(L: int, n_steps: int) -> np.ndarray:
    """Layer indices 0 = e_0 < … < e_N = L splitting L layers into N nearly equal blocks."""
    return np.unique(np.round(np.linspace(0, L, min(n_steps, L) + 1)).astype(int))


def _block_sums(X: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """Sums of X (S, L, ...) over the layer blocks [e_n, e_{n+1}): (S, N, ...)."""
    cs = torch.cat([torch.zeros_like(X[:, :1]), X.cumsum(1)], dim=1)
    e = torch.as_tensor(edges)
    return cs[:, e[1:]] - cs[:, e[:-1]]


def pathwise_limit(
    limit: str, A, b, delta, activation: str, x, n_steps: int, est: CoefficientEstimate | None = None, form: str = "q_dt"
) -> tuple[torch.Tensor, np.ndarray]:
    """The limit equation driven by the network's own weights coarsened to ``n_steps`` blocks.

    ODE limits use the block means of ``L M_k`` (linear) or of ``L δ_k``, A_k, b_k (nonlinear)
    as coefficients constant on each block (RK4); the Itô SDE uses the block sums of M_k, m_k
    as increments with ``form`` ``q_dt`` (the Itô drift from the estimated covariance, the
    limit) or ``realised`` (realised squares, the discrete scheme). Returns the states
    (N+1, S, n_inputs, d) at the block edges and the edges.
    """
    act = as_activation(activation)
    A, b, delta = as_tensor(A), as_tensor(b), as_tensor(delta)
    S, L, d = A.shape[:3]
    edges = block_edges(L, n_steps)
    ts = torch.as_tensor(edges / L, dtype=DTYPE)
    widths = torch.as_tensor(np.diff(edges), dtype=DTYPE)  # layers per block
    M = delta[..., None, None] * A
    m = delta[..., None] * b
    if limit == "linear_ode":
        Ab = _block_sums(M, edges) / (widths.view(1, -1, 1, 1) / L)  # block means of L M_k
        bb = _block_sums(m, edges) / (widths.view(1, -1, 1) / L)
        H = solve_linear_ode(PerStep(Ab.transpose(0, 1)), PerStep(bb.transpose(0, 1)), x, gain=act.slope_at_0, ts=ts)
    elif limit == "neural_ode":
        db = _block_sums(delta, edges) / (widths.view(1, -1) / L)
        Am = _block_sums(A, edges) / widths.view(1, -1, 1, 1)
        bm = _block_sums(b, edges) / widths.view(1, -1, 1)
        H = solve_neural_ode(PerStep(Am.transpose(0, 1)), PerStep(bm.transpose(0, 1)), x, act,
                             delta=PerStep(db.transpose(0, 1)), ts=ts)
    elif limit == "ito_sde":
        dWA, dWb = _block_sums(M, edges), _block_sums(m, edges)
        d_const = delta.mean(1)
        C = None
        if form == "q_dt" and act.curvature_at_0 != 0.0:
            if est is None or est.row_cov is None:
                raise ValueError("the q dt form needs a CoefficientEstimate with row_cov")
            tab = Tabulated(est.ts, est.row_cov.transpose(0, 1))  # (T, S, d, d+1, d+1)
            C = torch.stack([tab(float(t)) for t in ts[:-1]])  # (N, S, d, d+1, d+1)
        H = solve_ito_sde(dWA, dWb, x, act, True, row_cov=C, row_cov_per_step=C is not None, ts=ts, delta=d_const)
    else:
        raise ValueError(f"no pathwise limit for {limit!r} (the moment-matched diffusion is compared in law only)")
    return H, edges
