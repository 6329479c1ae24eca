"""Activations with the derivatives the limit equations need (docs/maths.md §1, §4).

Each activation exposes σ, σ' (elementwise, on torch tensors) and the constants σ(0),
σ'(0), σ''(0) that decide which deep limit exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

LOG2 = math.log(2.0)
#: 1/√(2π): the standard normal density at 0, and GELU's σ''(0) / 2.
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """An activation σ with its derivative and Taylor coefficients at 0."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    grad: Callable[[torch.Tensor], torch.Tensor]
    value_at_0: float
    slope_at_0: float
    curvature_at_0: float
    smooth: bool  # C² at 0: the diffusive limit of docs/maths.md §4(c) applies
    fn_into: Callable[[torch.Tensor, torch.Tensor], object] | None = None
    grad_from_value: Callable[[torch.Tensor, torch.Tensor], object] | None = None  # σ'(z) from σ(z), into out

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(z)

    def apply_into(self, z: torch.Tensor, out: torch.Tensor) -> None:
        """Write σ(z) into ``out`` without a temporary (the engine's per-layer hot path)."""
        if self.fn_into is None:
            out.copy_(self.fn(z))
        else:
            self.fn_into(z, out)


def _tanh_grad(z: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(z)
    return 1.0 - t * t


def _relu_grad(z: torch.Tensor) -> torch.Tensor:
    return (z > 0).to(z.dtype)


def _softplus0(z: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(z) - LOG2


def _gelu(z: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.gelu(z)  # the exact z Φ(z), not the tanh approximation


def _gelu_grad(z: torch.Tensor) -> torch.Tensor:
    """GELU'(z) = Φ(z) + z φ(z), by torch's own GELU derivative kernel (one pass over z)."""
    return torch.ops.aten.gelu_backward(torch.ones_like(z), z)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(
        "tanh", torch.tanh, _tanh_grad, 0.0, 1.0, 0.0, True,
        fn_into=lambda z, out: torch.tanh(z, out=out),
        grad_from_value=lambda s, out: torch.mul(s, s, out=out).neg_().add_(1.0),
    ),
    "relu": Activation(
        "relu", torch.relu, _relu_grad, 0.0, 1.0, 0.0, False,
        fn_into=lambda z, out: torch.clamp(z, min=0.0, out=out),
        grad_from_value=lambda s, out: torch.sign(s, out=out),  # relu(z) ≥ 0: sign is 1{z > 0}
    ),
    "identity": Activation(
        "identity", lambda z: z, lambda z: torch.ones_like(z), 0.0, 1.0, 0.0, True
    ),
    # softplus(z) − log 2: σ(0) = 0, σ'(0) = 1/2, σ''(0) = 1/4 ≠ 0.
    "softplus0": Activation("softplus0", _softplus0, torch.sigmoid, 0.0, 0.5, 0.25, True),
    # GELU z Φ(z) (Marion et al. 2024): σ(0) = 0, σ'(0) = 1/2, σ''(0) = 2φ(0) = √(2/π) ≠ 0.
    "gelu": Activation("gelu", _gelu, _gelu_grad, 0.0, 0.5, 2.0 * INV_SQRT_2PI, True),
}


def get_activation(name: str) -> Activation:
    """Look an activation up by name, with an error that lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None
