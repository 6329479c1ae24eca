"""The discrete network of docs/maths.md §1 on weights given as arrays: inputs and hidden states.

``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)``, ``t = k/L``; the states are the engine's forward
pass (:meth:`resnet_scaling.training.resnet.ResNetEnsemble.trajectory`).
"""

from __future__ import annotations

import torch

from ..io import stable_seed
from ..sde.tensors import DTYPE, as_activation, as_tensor, generator
from ..training.activations import Activation
from ..training.resnet import ResNetEnsemble


def unit_inputs(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` inputs of unit Euclidean norm in R^dim (like the synthetic data), (n, dim)."""
    x = torch.randn(n, dim, generator=generator(stable_seed("limits-inputs", seed)), dtype=DTYPE)
    return x / x.norm(dim=1, keepdim=True)


def network_states(A, b, delta, activation: str | Activation, x) -> torch.Tensor:
    """Hidden states h_0..h_L of P networks on N inputs each, (L+1, P, N, d), float64.

    ``A`` (P, L, d, d), ``b`` (P, L, d), ``delta`` scalar, (L,) or (P, L); ``x`` (N, d) or
    (P, N, d).
    """
    A, b = as_tensor(A), as_tensor(b)
    P, L = A.shape[:2]
    delta = as_tensor(delta)
    delta = delta.expand(P, L) if delta.dim() <= 1 else delta
    net = ResNetEnsemble.from_numpy(A.numpy(), b.numpy(), delta.numpy(), "multi", as_activation(activation))
    return net.trajectory(as_tensor(x)).h
