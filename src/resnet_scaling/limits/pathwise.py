"""Limit equations driven by a trained network's own weights, coarsened to N blocks of layers
(docs/maths.md §4, trained networks (a))."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..sde.coefficients import PerStep, Tabulated
from ..sde.ito import solve_ito_sde
from ..sde.ode import solve_linear_ode, solve_neural_ode
from ..sde.tensors import DTYPE, as_activation, as_tensor
from ..training.activations import Activation
from .coefficients import CoefficientEstimate


def block_edges(L: int, n_steps: int) -> np.ndarray:
    """Layer indices 0 = e_0 < … < e_N = L splitting L layers into N nearly equal blocks."""
    return np.unique(np.round(np.linspace(0, L, min(n_steps, L) + 1)).astype(int))


def _block_sums(X: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """Sums of X (S, L, ...) over the layer blocks [e_n, e_{n+1}): (S, N, ...), in one pass
    (exact for blocks of one layer, unlike differences of a cumulative sum)."""
    S, L = X.shape[:2]
    if len(edges) - 1 == L:
        return X.clone()
    block = torch.as_tensor(np.repeat(np.arange(len(edges) - 1), np.diff(edges)))  # block of each layer
    sums = torch.zeros((S, len(edges) - 1, X[0, 0].numel()), dtype=X.dtype)
    return sums.index_add_(1, block, X.reshape(S, L, -1)).view(S, len(edges) - 1, *X.shape[2:])


@dataclass
class PathwiseCoefficients:
    """The coefficients of a limit equation driven by the networks' own weights coarsened to
    N blocks: built once per depth, then solved for any inputs (:meth:`solve`)."""

    limit: str
    activation: Activation
    edges: np.ndarray
    coefficients: dict

    def solve(self, x) -> torch.Tensor:
        """The states (N+1, S, n_inputs, d) at the block edges, for inputs x (n_inputs, d)."""
        ts = torch.as_tensor(self.edges / self.edges[-1], dtype=DTYPE)
        c, act = self.coefficients, self.activation
        if self.limit == "linear_ode":
            return solve_linear_ode(c["A"], c["b"], x, gain=act.slope_at_0, ts=ts)
        if self.limit == "neural_ode":
            return solve_neural_ode(c["A"], c["b"], x, act, delta=c["delta"], ts=ts)
        return solve_ito_sde(c["dWA"], c["dWb"], x, act, True, row_cov=c["row_cov"],
                             row_cov_per_step=c["row_cov"] is not None, ts=ts, delta=c["delta"])


def pathwise_coefficients(
    limit: str, A, b, delta, activation: str | Activation, n_steps: int, est: CoefficientEstimate | None = None,
    form: str = "q_dt",
) -> PathwiseCoefficients:
    """The limit equation driven by the network's own weights coarsened to ``n_steps`` blocks.

    ODE limits use the block means of ``L M_k`` (linear) or of ``L δ_k``, A_k, b_k (nonlinear)
    as coefficients constant on each block (RK4); the Itô SDE uses the block sums of M_k, m_k
    as increments with ``form`` ``q_dt`` (the Itô drift from the estimated covariance, the
    limit) or ``realised`` (realised squares, the discrete scheme).
    """
    act = as_activation(activation)
    A, b, delta = as_tensor(A), as_tensor(b), as_tensor(delta)
    S, L, d = A.shape[:3]
    edges = block_edges(L, n_steps)
    ts = torch.as_tensor(edges / L, dtype=DTYPE)
    scale = torch.as_tensor(L / np.diff(edges), dtype=DTYPE)  # L / layers per block: block sum -> block mean of L X
    if limit == "linear_ode":
        Ab = _block_sums(delta[..., None, None] * A, edges).mul_(scale.view(1, -1, 1, 1))  # block means of L M_k
        bb = _block_sums(delta[..., None] * b, edges).mul_(scale.view(1, -1, 1))
        coefficients = {"A": PerStep(Ab.transpose(0, 1)), "b": PerStep(bb.transpose(0, 1))}
    elif limit == "neural_ode":
        db = _block_sums(delta, edges).mul_(scale.view(1, -1))
        Am = _block_sums(A, edges).mul_(scale.view(1, -1, 1, 1) / L)
        bm = _block_sums(b, edges).mul_(scale.view(1, -1, 1) / L)
        coefficients = {"A": PerStep(Am.transpose(0, 1)), "b": PerStep(bm.transpose(0, 1)),
                        "delta": PerStep(db.transpose(0, 1))}
    elif limit == "ito_sde":
        C = None
        if form == "q_dt" and act.curvature_at_0 != 0.0:
            if est is None or est.row_cov is None:
                raise ValueError("the q dt form needs a CoefficientEstimate with row_cov")
            tab = Tabulated(est.ts, est.row_cov.transpose(0, 1))  # (T, S, d, d+1, d+1)
            C = torch.stack([tab(float(t)) for t in ts[:-1]])  # (N, S, d, d+1, d+1)
        coefficients = {"dWA": _block_sums(delta[..., None, None] * A, edges),
                        "dWb": _block_sums(delta[..., None] * b, edges), "row_cov": C, "delta": delta.mean(1)}
    else:
        raise ValueError(f"no pathwise limit for {limit!r} (the moment-matched diffusion is compared in law only)")
    return PathwiseCoefficients(limit, act, edges, coefficients)
