"""The discrete network of docs/maths.md §1 on weights given as arrays: inputs and hidden states.

``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)``, ``t = k/L``, in float64, written independently of
the training engine (:class:`resnet_scaling.training.resnet.ResNetEnsemble`), which the tests
compare it with, in the compiled loops where they apply and in torch operations elsewhere.
"""

from __future__ import annotations

import torch

from ..io import stable_seed
from ..sde import compiled
from ..sde.tensors import DTYPE, as_activation, as_tensor, generator, path_inputs
from ..training.activations import Activation


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
