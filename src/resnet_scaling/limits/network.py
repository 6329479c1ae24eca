"""The discrete network of docs/maths.md §1 on weights given as arrays: inputs and hidden states.

``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)``, ``t = k/L``, in float64, written independently of
the training engine (:class:`resnet_scaling.training.resnet.ResNetEnsemble`), which the tests
compare it with, in the compiled loops where they apply and in torch operations elsewhere.
"""

from __future__ import annotations

import numpy as np
import torch

from ..io import stable_seed
from ..sde import compiled
from ..sde.tensors import DTYPE, as_activation, as_tensor, generator, path_inputs
from ..training.activations import Activation
from ..training.resnet import ResNetEnsemble


#: How :func:`_propagate` runs (:data:`..sde.compiled.ENGINES`); the tests set ``python``.
ENGINE = "auto"


def unit_inputs(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` inputs of unit Euclidean norm in R^dim (like the synthetic data), (n, dim)."""
    x = torch.randn(n, dim, generator=generator(stable_seed("limits-inputs", seed)), dtype=DTYPE)
    return x / x.norm(dim=1, keepdim=True)


def network_states(A, b, delta, activation: str | Activation, x) -> torch.Tensor:
    """Hidden states h_0..h_L of P networks on N inputs each, (L+1, P, N, d), float64.

    ``A`` (P, L, d, d), ``b`` (P, L, d), ``delta`` scalar, (L,) or (P, L); ``x`` (N, d) or
    (P, N, d). Only the states are held, not the pre-activations: at L = 9100 every extra
    array of this shape is GBs.
    """
    return _propagate(A, b, delta, activation, x, keep_states=True)


def network_outputs(A, b, delta, activation: str | Activation, x) -> torch.Tensor:
    """The outputs h_L of :func:`network_states`, (P, N, d), in memory independent of L."""
    return _propagate(A, b, delta, activation, x, keep_states=False)


def _propagate(A, b, delta, activation: str | Activation, x, *, keep_states: bool) -> torch.Tensor:
    """``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)`` one layer at a time: all networks at once in
    torch operations, or one network at a time in the compiled loops of :mod:`..sde.compiled`
    where they build and apply (tanh, ReLU; the two agree to rounding)."""
    A, b = as_tensor(A), as_tensor(b)
    P, L, d = A.shape[:3]
    delta = as_tensor(delta)
    delta = delta.expand(P, L) if delta.dim() <= 1 else delta
    act = as_activation(activation)
    lib = compiled.select(ENGINE, act.name)
    if lib is not None:
        loop = compiled.network_forward if keep_states else compiled.network_output
        return loop(lib, A, b, delta, path_inputs(x, P, d), act.name)
    h = path_inputs(x, P, d).clone()
    states = torch.empty((L + 1, *h.shape), dtype=DTYPE) if keep_states else None
    if keep_states:
        states[0] = h
    for k in range(L):
        z = torch.baddbmm(b[:, k, None, :], h, A[:, k].transpose(-1, -2))  # (P, N, d): A_k h + b_k
        h = h + delta[:, k, None, None] * act(z)
        if keep_states:
            states[k + 1] = h
    return states if keep_states else h


def network_adjoint_paths(A, b, delta, activation: str | Activation, x, target, loss_scale: float = 1.0, *,
                          gradients: bool = True, engine: str = "auto"):
    """The networks' states and explicit adjoint (docs/maths.md §5) with their per-layer gradients:
    ``(h, p, grad_M, grad_m, δ)``, h and p (L+1, P, N, d), ``grad_M`` = ∂ℓ/∂A_k / δ_k (L, P, d, d),
    ``grad_m`` = ∂ℓ/∂b_k / δ_k (L, P, d), δ (L, P), for ``ℓ = (c/2) Σ_n |h_L^n − y^n|²``
    (``p_L = c (h_L − y)``).

    The compiled loops of :mod:`..sde.compiled` where they build and apply (``engine`` as there;
    without ``gradients`` they leave both gradients None), else the training engine's explicit
    adjoint (:meth:`ResNetEnsemble.adjoint`); the two agree to rounding. ``A`` (P, L, d, d),
    ``b`` (P, L, d) path-major, ``delta`` (L,) or (P, L); ``x``, ``target`` (N, d) or (P, N, d).
    """
    A = np.asarray(A, dtype=np.float64)
    P, L = A.shape[:2]
    delta = np.array(np.broadcast_to(np.asarray(delta, dtype=np.float64), (P, L)))
    act = as_activation(activation)
    lib = compiled.select(engine, act.name)
    y = as_tensor(target)
    y = y.expand(P, *y.shape) if y.dim() == 2 else y
    if lib is not None:
        H = compiled.network_forward(lib, A, b, delta, path_inputs(x, P, A.shape[-1]), act.name)
        p, grad_M, grad_m = compiled.network_adjoint(lib, A, b, delta, H, loss_scale * (H[-1] - y), act.name,
                                                     gradients=gradients)
        return H, p, grad_M, grad_m, torch.from_numpy(delta.T.copy())
    net = ResNetEnsemble.from_numpy(A, b, delta, "multi", act)
    traj = net.trajectory(as_tensor(x))
    grads, p = net.adjoint(traj, loss_scale * (traj.h[-1] - y), keep_adjoint=True)
    dl = net.deltas()  # (L, P)
    return traj.h, p, grads["A"] / dl[..., None, None], grads["b"] / dl[..., None], dl
