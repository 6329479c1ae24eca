"""The diffusive regime as a forward-backward system (docs/maths.md §4(c), §5):

``P_t = ∇ℓ(H_1) + σ'(0) ∫_t^1 (dW^A_s)ᵀ P_s + σ''(0) ∫_t^1 r(s, H_s, P_s) ds``,
``r_j = Σ_i P^i (C_i ũ)_j``, ũ = (H, 1), C_i the covariation rate of row i of (W^A | W^b);
the increment on [s, s+ds] multiplies P_{s+ds} (right-point sums, as in the discrete
recursion), driven by the same weight path as the forward SDE.
"""

from __future__ import annotations

from ..sde.ito import solve_ito_adjoint, solve_ito_sde
from ..sde.tensors import as_activation, as_tensor
from ..training.activations import Activation
from .backprop import LimitBackprop


def solve_fbsde(
    dWA,
    dWb,
    x,
    target,
    activation: str | Activation,
    with_ito_term: bool = True,
    *,
    row_cov=None,
    loss_scale: float = 1.0,
) -> LimitBackprop:
    """The forward-backward system of the diffusive regime on given increments (docs/maths.md §4(c), §5).

    Forward: :func:`resnet_scaling.sde.ito.solve_ito_sde` (Euler–Maruyama, Itô term ½σ''(0) q dt from
    ``row_cov`` or the realised squares); backward: :func:`resnet_scaling.sde.ito.solve_ito_adjoint` with the matching
    σ''(0) term, from ``P_1 = c (H_1 − y)``. ``with_ito_term=False`` drops both σ''(0) terms.
    """
    act = as_activation(activation)
    H = solve_ito_sde(dWA, dWb, x, act, with_ito_term, row_cov=row_cov)
    p1 = loss_scale * (H[-1] - as_tensor(target))
    Pt = solve_ito_adjoint(dWA, dWb, H, p1, act, with_ito_term, row_cov)
    return LimitBackprop(H, Pt, act.slope_at_0)
