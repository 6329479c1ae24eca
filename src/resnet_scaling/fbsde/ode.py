"""The ODE regimes as forward-backward systems (docs/maths.md §5, §4(a), (b)): RK4 forward
(:mod:`resnet_scaling.sde.ode`) and RK4 backward on the same grid.

- neural ODE:  ``dP/dt = −A_tᵀ(σ'(A_t H_t + b_t) ⊙ P_t) δ̄_t``,  ``P_1 = ∇ℓ(H_1)``
- smooth β > 0: ``dP/dt = −δ̄ σ'(0) Ā_tᵀ P_t``
"""

from __future__ import annotations

from typing import Callable

import torch

from ..sde.loop import integrate
from ..sde.ode import half_grid, solve_on_half_grid  # noqa: F401  (half_grid: named by fbsde too)
from ..sde.schemes import rk4_step
from ..sde.tensors import DTYPE, as_activation, as_tensor
from ..training.activations import Activation
from ..sde import compiled
from .backprop import LimitBackprop


def solve_adjoint_ode(vjp: Callable[[int, torch.Tensor], torch.Tensor], p1: torch.Tensor, n_steps: int) -> torch.Tensor:
    """RK4 backward from ``P_1 = p1`` for ``dP/dt = −J(t)ᵀ P`` on n uniform steps.

    ``vjp(j, P)`` returns ``J(t_j)ᵀ P`` at the half-grid time t_j = j/(2n) (grid points even
    j, midpoints odd j). Returns P at the n+1 grid times, (n+1, *p1.shape).
    """
    dt = 1.0 / n_steps

    # backward in t is forward in s = 1 − t, where dP/ds = J(1 − s)ᵀ P: RK4 steps from t_{i+1} to t_i
    def advance(i: int, p: torch.Tensor) -> torch.Tensor:
        return rk4_step(vjp, 2 * i + 2, dt, p, t_half=2 * i + 1, t1=2 * i)

    return integrate(advance, p1, n_steps, reverse=True)


def _hermite_midpoints(h: torch.Tensor, f: torch.Tensor, dt: float) -> torch.Tensor:
    """States at the step midpoints by cubic Hermite interpolation (O(dt⁴)), (n, …)."""
    return 0.5 * (h[:-1] + h[1:]) + (dt / 8) * (f[:-1] - f[1:])


def _pre_activations(A_T: torch.Tensor, b_rows: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """``A_t H_t + b_t`` at every time of a grid at once: A_T (T, P, d, d) transposed, b_rows
    (T, P, 1, d), H (T, P, N, d)."""
    return torch.matmul(H, A_T).add_(b_rows)


def ode_backprop(
    kind: str,
    A_half,
    b_half,
    x,
    target,
    activation: str | Activation,
    *,
    delta_half=None,
    loss_scale: float = 1.0,
    engine: str = "auto",
) -> LimitBackprop:
    """Forward-backward solution of an ODE limit with coefficients tabulated on the half grid.

    ``kind="neural_ode"``: ``dH/dt = δ̄_t σ(A_t H + b_t)``, ``dP/dt = −δ̄_t A_tᵀ(σ'(A_t H_t + b_t) ⊙ P)``;
    ``kind="linear_ode"``: ``dH/dt = σ'(0)(Ā_t H + b̄_t)``, ``dP/dt = −σ'(0) Ā_tᵀ P`` (δ̄ = 1
    absorbed in Ā, b̄). ``A_half`` (2n+1, P, d, d), ``b_half`` (2n+1, P, d) and ``delta_half``
    (2n+1, P) (neural ODE; default 1) at :func:`half_grid` times. Forward and backward are RK4
    on the n-step grid with the coefficients read off the half grid by index (no interpolation:
    every evaluation time of a step is a half-grid time).

    ``engine``: ``compiled`` runs both RK4 loops in C++ (:mod:`..sde.compiled`), ``python`` in torch
    operations; ``auto`` (default) the compiled loops where they build and evaluate the activation
    (tanh, ReLU; any for the linear ODE), else Python. The two agree to rounding.
    """
    act = as_activation(activation)
    A_half, b_half = as_tensor(A_half), as_tensor(b_half)
    n = (A_half.shape[0] - 1) // 2
    if kind not in ("neural_ode", "linear_ode"):
        raise ValueError(f"unknown ODE kind {kind!r}; expected neural_ode or linear_ode")
    lib = compiled.select(engine, act.name if kind == "neural_ode" else None)
    H = solve_on_half_grid(kind, A_half, b_half, x, act, delta_half=delta_half, engine="python" if lib is None else "compiled")
    if kind == "neural_ode":
        d_half = torch.ones(A_half.shape[:2], dtype=DTYPE) if delta_half is None else as_tensor(delta_half)
        scale = d_half.view(*d_half.shape, 1, 1)  # (2n+1, P, 1, 1)
    else:
        g = act.slope_at_0
    A_T, b_rows = A_half.transpose(-1, -2), b_half.unsqueeze(-2)
    y = as_tensor(target)
    p1 = loss_scale * (H[-1] - y)
    if kind == "linear_ode":
        # J(t)ᵀ P = σ'(0) Āᵀ P does not depend on the state: one multiply per evaluation
        slope = g
        if lib is not None:
            return LimitBackprop(H, compiled.adjoint(lib, A_half, p1, slope=g), slope)
        Pt = solve_adjoint_ode(lambda j, p: torch.baddbmm(p, p, A_half[j], beta=0.0, alpha=g), p1, n)
        return LimitBackprop(H, Pt, slope)
    # the pre-activations at every half-grid time at once, at the midpoints from the Hermite
    # interpolant of the states; the backward RK4 then multiplies by δ̄_t σ'(A_t H_t + b_t) read by index
    z_grid = _pre_activations(A_T[0::2], b_rows[0::2], H)
    H_mid = _hermite_midpoints(H, scale[0::2] * act.fn(z_grid), 1.0 / n)
    slope = act.grad(z_grid)
    del z_grid
    weight = torch.empty((2 * n + 1, *H.shape[1:]), dtype=H.dtype)
    torch.mul(scale[0::2], slope, out=weight[0::2])
    torch.mul(scale[1::2], act.grad(_pre_activations(A_T[1::2], b_rows[1::2], H_mid)), out=weight[1::2])
    del H_mid
    if lib is not None:
        return LimitBackprop(H, compiled.adjoint(lib, A_half, p1, weight=weight), slope)
    Pt = solve_adjoint_ode(lambda j, p: torch.matmul(weight[j] * p, A_half[j]), p1, n)
    return LimitBackprop(H, Pt, slope)

