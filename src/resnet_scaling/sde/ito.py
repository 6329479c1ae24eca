"""The Itô SDE of docs/maths.md §4(c) and its adjoint (§5): steps, pathwise and generative solvers.

``dH = σ'(0)(dW^A H + dW^b) + ½ σ''(0)/δ q(t, H) dt`` with ``q_i = ũᵀ C_i ũ``, ũ = (H, 1), C_i
the rate of the quadratic covariation of row i of (W^A | W^b). The forward step is
Euler–Maruyama on the increments of the weight paths; the backward step is its exact
discrete adjoint, so the pair is one forward-backward system.
"""

from __future__ import annotations

import numpy as np
import torch

from ..training.activations import Activation
from .loop import integrate
from .schemes import Scheme
from .tensors import as_activation, as_tensor, generator, path_inputs, time_grid


def ito_q(h: torch.Tensor, row_cov: torch.Tensor) -> torch.Tensor:
    """``q_i(H) = ũᵀ C_i ũ`` with ũ = (H, 1): the rate of d[X^i] (docs/maths.md §4(c)).

    ``h`` (P, N, d); ``row_cov`` the quadratic-covariation rate of row i of (W^A | W^b):
    (d, d+1, d+1) shared, (P, d, d+1, d+1) per path, or (d, d+1) when every C_i is diagonal
    (independent entries; then q = (ũ⊙ũ) Cᵀ). Returns (P, N, d).
    """
    d = h.shape[-1]
    u = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)  # (P, N, d+1)
    if row_cov.dim() == 2:
        return torch.matmul(u * u, row_cov.transpose(0, 1))
    if row_cov.dim() == 3:
        Cu = torch.matmul(u, row_cov.permute(1, 0, 2).reshape(d + 1, d * (d + 1)))  # (P, N, d(d+1))
        Cu = Cu.view(*u.shape[:-1], d, d + 1)
    else:
        Cu = torch.einsum("pnj,pijk->pnik", u, row_cov)
    return (Cu * u.unsqueeze(-2)).sum(-1)


def compact_row_cov(C: torch.Tensor) -> torch.Tensor:
    """The diagonal (…, d, d+1) of row covariances (…, d, d+1, d+1) when they are all diagonal
    (the cheap form of :func:`ito_q`), else ``C`` unchanged."""
    if C.dim() >= 3 and C.shape[-1] == C.shape[-2]:
        diag = torch.diagonal(C, dim1=-2, dim2=-1)
        if torch.equal(C, torch.diag_embed(diag)):
            return diag
    return C


def ito_step(
    h: torch.Tensor,
    dWA: torch.Tensor,
    dWb: torch.Tensor,
    dt: float,
    act: Activation,
    with_ito_term: bool = True,
    row_cov: torch.Tensor | None = None,
    delta: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """One Euler–Maruyama step of docs/maths.md §4(c) for states (P, N, d), increments (P, d, d), (P, d).

    ``delta``: the constant δ of the network, a float or one per path as (P, 1, 1).

    ``H + σ'(0) ΔX + ½ σ''(0)/δ · (q(H) dt if row_cov is given else ΔX⊙ΔX)``, ΔX = ΔW^A H + ΔW^b.
    The realised-square form is the discrete scheme consistent with the network.
    """
    dX = torch.baddbmm(dWb.unsqueeze(1), h, dWA.transpose(1, 2))
    out = h + act.slope_at_0 * dX
    if with_ito_term and act.curvature_at_0 != 0.0:
        c = 0.5 * act.curvature_at_0 / delta
        out = out + (c * dt) * ito_q(h, row_cov) if row_cov is not None else out + c * dX * dX
    return out


def ito_adjoint_step(
    p: torch.Tensor,
    h: torch.Tensor,
    dWA: torch.Tensor,
    dWb: torch.Tensor,
    dt: float,
    act: Activation,
    with_ito_term: bool = True,
    row_cov: torch.Tensor | None = None,
) -> torch.Tensor:
    """One backward step of the adjoint of docs/maths.md §5 (diffusive): P_n from P_{n+1} = ``p``
    and the forward state H_n = ``h``, the exact discrete adjoint of :func:`ito_step` (δ = 1):

        P_n = P_{n+1} + σ'(0) ΔW^A_nᵀ P_{n+1} + σ''(0) (r(H_n, P_{n+1}) dt  or  ΔW^A_nᵀ(ΔX_n ⊙ P_{n+1}))

    with ``r_j = Σ_i P^i (C_i ũ)_j`` from the covariation rate ``row_cov`` (d, d+1, d+1), else
    the realised products (ΔX_n = ΔW^A_n H_n + ΔW^b_n).
    """
    s1, s2 = act.slope_at_0, act.curvature_at_0
    if not (with_ito_term and s2 != 0.0):
        return p + s1 * torch.matmul(p, dWA)
    if row_cov is None:
        dX = torch.baddbmm(dWb.unsqueeze(1), h, dWA.transpose(1, 2))
        return p + torch.matmul(s1 * p + s2 * dX * p, dWA)
    # r_j = Σ_i P^i (C_i ũ)_j, ũ = (H, 1): ½ ∂_H q(H)ᵀ P (docs/maths.md §5)
    u = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
    Cu = torch.einsum("pnl,ijl->pnij", u, row_cov)[..., :-1]
    r = torch.einsum("pni,pnij->pnj", p, Cu)
    return p + s1 * torch.matmul(p, dWA) + (s2 * dt) * r


#: Euler–Maruyama on the weight increments: strong order ½, weak order 1 (docs/maths.md §4(f)).
ITO_EULER_MARUYAMA = Scheme("ito_euler_maruyama", ito_step, strong_order=0.5, weak_order=1.0, solves="ito_sde")
#: Its exact discrete adjoint, run backward on the same increments: strong order ½ (§4(f), §5).
ITO_ADJOINT = Scheme("ito_adjoint", ito_adjoint_step, strong_order=0.5, weak_order=1.0, solves="backward_sde")


def solve_ito_sde(
    dWA,
    dWb,
    x,
    activation: str | Activation,
    with_ito_term: bool = True,
    *,
    row_cov=None,
    row_cov_per_step: bool = False,
    ts=None,
    delta: float = 1.0,
    record_every: int = 1,
) -> torch.Tensor:
    """Pathwise Euler–Maruyama scheme of the Itô SDE of docs/maths.md §4(c) on *given* increments.

    ``dWA`` (P, n, d, d), ``dWb`` (P, n, d): increments of the weight paths (drift included)
    over the steps of ``ts`` (default uniform, n steps on [0, 1]). ``row_cov``: the rate C_i
    of the quadratic covariation in the Itô drift ½σ''(0)/δ · q dt, (d, d+1, d+1) or
    (P, d, d+1, d+1) (see :func:`ito_q`), with a leading step axis of length n when
    ``row_cov_per_step``; with None the realised squares ΔX⊙ΔX are used instead.
    ``with_ito_term=False`` drops the ½σ''(0) term. ``delta`` the constant δ (σ''(0)/δ, §4(c)),
    a float or one per path (P,).
    Returns the states at every ``record_every``-th grid time, (n/record_every + 1, P, N, d).
    """
    act = as_activation(activation)
    dWA, dWb = as_tensor(dWA), as_tensor(dWb)
    P, n, d = dWA.shape[0], dWA.shape[1], dWA.shape[2]
    ts = time_grid(n, ts)
    if len(ts) != n + 1:
        raise ValueError(f"{n} increments need a grid of {n + 1} times, got {len(ts)}")
    if n % record_every:
        raise ValueError(f"record_every={record_every} must divide the {n} steps")
    dts = (ts[1:] - ts[:-1]).tolist()
    if isinstance(delta, (torch.Tensor, np.ndarray)) and np.ndim(delta) > 0:
        delta = as_tensor(delta).reshape(-1, 1, 1)
    C = None if row_cov is None else compact_row_cov(as_tensor(row_cov))
    per_step = C is not None and row_cov_per_step
    if per_step and C.shape[0] != n:
        raise ValueError(f"row_cov_per_step needs {n} covariances, got {C.shape[0]}")
    A_steps = dWA.transpose(0, 1)  # (n, P, d, d) views
    b_steps = dWb.transpose(0, 1)

    def advance(k: int, h: torch.Tensor) -> torch.Tensor:
        return ito_step(h, A_steps[k], b_steps[k], dts[k], act, with_ito_term, C[k] if per_step else C, delta)

    return integrate(advance, path_inputs(x, P, d).clone(), n, record_every=record_every)


def solve_ito_adjoint(
    dWA,
    dWb,
    H: torch.Tensor,
    p1: torch.Tensor,
    activation: str | Activation,
    with_ito_term: bool = True,
    row_cov=None,
) -> torch.Tensor:
    """The backward linear SDE of docs/maths.md §5 (diffusive), driven by the forward's increments.

    ``dWA`` (P, n, d, d), ``dWb`` (P, n, d) on the uniform n-step grid of the forward states
    ``H`` (n+1, P, N, d) of :func:`solve_ito_sde`; ``p1`` (P, N, d). Backward-Itô steps of
    :func:`ito_adjoint_step`, each increment multiplying the later adjoint; ``row_cov`` one
    (d, d+1, d+1) covariation rate, or None for the realised products. Returns P at the grid
    times, (n+1, P, N, d).
    """
    act = as_activation(activation)
    dWA, dWb = as_tensor(dWA), as_tensor(dWb)
    n = dWA.shape[1]
    A_steps, b_steps = dWA.transpose(0, 1), dWb.transpose(0, 1)
    C = None if row_cov is None else as_tensor(row_cov)
    if C is not None and C.dim() != 3:
        raise ValueError("row_cov must be one (d, d+1, d+1) covariation rate shared by all steps")
    dt = 1.0 / n

    def advance(k: int, p: torch.Tensor) -> torch.Tensor:
        return ito_adjoint_step(p, H[k], A_steps[k], b_steps[k], dt, act, with_ito_term, C)

    return integrate(advance, p1, n, reverse=True)


def sample_ito_sde(
    law,
    x,
    activation: str | Activation,
    n_steps: int,
    n_paths: int,
    seed: int,
    with_ito_term: bool = True,
    *,
    delta: float = 1.0,
    record_every: int = 1,
) -> torch.Tensor:
    """Generative Euler–Maruyama solution of docs/maths.md §4(c) with fresh noise from ``law``
    (a :class:`~resnet_scaling.sde.laws.WeightPathLaw`).

    Increments come from ``law.increments`` (seeded by ``seed``), the Itô drift uses
    ``law.row_cov(t) · dt``. Returns (n_steps/record_every + 1, n_paths, N, d).
    """
    act = as_activation(activation)
    gen = generator(seed)
    dt = 1.0 / n_steps

    def advance(k: int, h: torch.Tensor) -> torch.Tensor:
        t0 = k * dt
        dWA, dWb = law.increments(t0, t0 + dt, n_paths, gen)
        C = law.row_cov(t0) if with_ito_term and act.curvature_at_0 != 0.0 else None
        return ito_step(h, dWA, dWb, dt, act, with_ito_term, C, delta)

    return integrate(advance, path_inputs(x, n_paths, law.dim).clone(), n_steps, record_every=record_every)
