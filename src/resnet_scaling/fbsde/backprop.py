"""Backpropagation through a network and through its limit: containers, and the network side
from the engine's explicit discrete adjoint (docs/maths.md §5).

Per-layer gradients are compared through the effective weights ``M_k = δ_k A_k``:
``∂ℓ/∂M_k = ∂ℓ/∂A_k / δ_k = (σ'(z_k) ⊙ p_{k+1}) h_kᵀ``. With ``δ_k = δ̄ L^{β−1}`` this is the
rescaled gradient ``L^{1−β} ∂ℓ/∂A_k / δ̄`` of §5, and its limit is the gradient field
``G(t) = (s_t ⊙ P_t) H_tᵀ`` with ``s_t = σ'(A_t H_t + b_t)`` (neural ODE) or ``σ'(0)``
(linear ODE, diffusive). On a layer grid the limit is read as ``(s_{k/L} ⊙ P_{(k+1)/L}) H_{k/L}ᵀ``.
The bias gradients ``∂ℓ/∂m_k → s_t ⊙ P_t`` likewise. The loss is
``ℓ = (c/2) Σ_n |h_L^n − y^n|²`` (c = ``loss_scale``), summed over the inputs of a path.

Shapes (float64, time-major like the engine): states and adjoints (n+1, P, N, d); per-layer
gradients (n, P, d, d) and (n, P, d).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..limits.network import network_adjoint_paths


@dataclass
class NetworkBackprop:
    """The network's forward states, adjoint and per-layer gradients (time-major).

    ``h``, ``p`` (L+1, P, N, d); ``grad_M`` = ∂ℓ/∂A_k / δ_k (L, P, d, d); ``grad_m`` =
    ∂ℓ/∂b_k / δ_k (L, P, d); ``delta`` (L, P).
    """

    h: torch.Tensor
    p: torch.Tensor
    grad_M: torch.Tensor | None
    grad_m: torch.Tensor | None
    delta: torch.Tensor

    @property
    def depth(self) -> int:
        return self.h.shape[0] - 1


@dataclass
class LimitBackprop:
    """A limit system solved on a uniform grid of n steps: states ``h``, adjoints ``p``
    (n+1, P, N, d) and the slope field ``slope`` (σ'(A_t H_t + b_t), (n+1, P, N, d), or the
    constant σ'(0))."""

    h: torch.Tensor
    p: torch.Tensor
    slope: torch.Tensor | float

    @property
    def n_steps(self) -> int:
        return self.h.shape[0] - 1

    def on_layers(self, L: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """States, adjoints at t = k/L (L+1, …) and the gradient fields on the layer grid:
        ``G_k = (s_{k/L} ⊙ P_{(k+1)/L}) H_{k/L}ᵀ`` (L, P, d, d) and ``s ⊙ P`` (L, P, d), summed
        over the inputs like the network's gradients."""
        n = self.n_steps
        if n % L:
            raise ValueError(f"depth {L} must divide the {n} steps of the limit grid")
        r = n // L
        h, p = self.h[::r], self.p[::r]
        s = self.slope[::r][:-1] if isinstance(self.slope, torch.Tensor) else self.slope
        sp = s * p[1:]
        return h, p, torch.einsum("kpni,kpnj->kpij", sp, h[:-1]), sp.sum(2)


def network_backprop(A, b, delta, activation, x, target, loss_scale: float = 1.0, *, gradients: bool = True,
                     engine: str = "auto") -> NetworkBackprop:
    """Adjoint and per-layer gradients of P networks: the explicit discrete adjoint
    (:func:`..limits.network.network_adjoint_paths`: the compiled loops of :mod:`..sde.compiled`
    where they apply, else :meth:`ResNetEnsemble.adjoint`; ``engine`` as there).

    ``A`` (P, L, d, d), ``b`` (P, L, d) path-major (the convention on disk), ``delta`` (L,)
    or (P, L) the effective δ_k; ``x``, ``target`` (N, d) or (P, N, d). The loss is
    ``(c/2) Σ_n |h_L^n − y^n|²``, so ``p_L = c (h_L − y)``. Without ``gradients`` the compiled
    loops leave ``grad_M`` and ``grad_m`` None (only the paths are wanted).
    """
    return NetworkBackprop(*network_adjoint_paths(A, b, delta, activation, x, target, loss_scale,
                                                  gradients=gradients, engine=engine))
