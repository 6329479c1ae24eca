"""The Itô SDE of docs/maths.md §4(c) through torchsde: a cross-check of :func:`.ito.solve_ito_sde`
on the same Brownian increments, and the baseline of ``benchmarks/sde_throughput.py``."""

from __future__ import annotations

from typing import Sequence

import torch

from ..training.activations import Activation
from .ito import compact_row_cov, ito_q
from .laws import GaussianWeightPathLaw
from .tensors import DTYPE, as_activation, as_tensor, path_inputs


def torchsde_ito_solve(
    law: GaussianWeightPathLaw,
    dB: torch.Tensor,
    x,
    activation: str | Activation,
    with_ito_term: bool = True,
    out_times: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """The SDE of docs/maths.md §4(c) with the weight-path law ``law``, solved by torchsde's Euler
    scheme (general noise, m = d² + d Brownian motions) on the increments ``dB`` (P, n, m)
    of the uniform grid with n steps; the N inputs of a path share its Brownian path.

    Drift ``f = σ'(0)(a(t) H + β(t)) + ½σ''(0) q(H)``, diffusion ``g`` (batch, d, m) with
    ``g dB = σ'(0)(s_A ⊙ dB^A H + s_b ⊙ dB^b)``. Returns the states at ``out_times``,
    (len(out_times), P, N, d) — compare with :func:`solve_ito_sde` on
    :func:`gaussian_increments` of the same ``dB``.
    """
    import torchsde

    act = as_activation(activation)
    P, n, m = dB.shape
    d = law.dim
    x = path_inputs(x, P, d)
    N = x.shape[1]
    C = compact_row_cov(law.row_cov(0.0))  # the same q evaluation as solve_ito_sde
    c2 = 0.5 * act.curvature_at_0 if with_ito_term else 0.0
    s1 = act.slope_at_0
    sA, sb = law.noise_A, law.noise_b
    cum = torch.cat([torch.zeros(P, 1, m, dtype=DTYPE), dB.cumsum(1)], dim=1)  # B at the grid times

    class TabulatedBrownian(torchsde.BaseBrownian):
        """B(tb) − B(ta) read from the table of grid increments (ta, tb rounded to the grid)."""

        def __init__(self):
            super().__init__()

        def __call__(self, ta, tb=None, return_U=False, return_A=False):
            i0, i1 = round(float(ta) * n), round(float(tb) * n)
            return (cum[:, i1] - cum[:, i0]).repeat_interleave(N, dim=0)

        def __repr__(self):
            return "TabulatedBrownian()"

        dtype = DTYPE
        device = torch.device("cpu")
        shape = (P * N, m)
        levy_area_approximation = "none"

    class SDE(torch.nn.Module):
        noise_type = "general"
        sde_type = "ito"

        def f(self, t, y):
            h = y.view(P, N, d)
            tt = float(t)
            out = s1 * (torch.matmul(h, as_tensor(law.drift_A(tt)).transpose(0, 1)) + as_tensor(law.drift_b(tt)))
            if c2:
                out = out + c2 * ito_q(h, C)
            return out.reshape(P * N, d)

        def g(self, t, y):
            B = y.shape[0]
            g = torch.zeros(B, d, m, dtype=DTYPE)
            # column (i, j) of the A block multiplies y_j in row i; the b block is diagonal
            gA = g[:, :, : d * d].view(B, d, d, d)
            idx = torch.arange(d)
            gA[:, idx, idx, :] = s1 * sA.unsqueeze(0) * y.unsqueeze(1)
            g[:, idx, d * d + idx] = s1 * sb
            return g

    ts = torch.tensor(list(out_times), dtype=DTYPE)
    ys = torchsde.sdeint(SDE(), x.reshape(P * N, d).clone(), ts, bm=TabulatedBrownian(), method="euler", dt=1.0 / n)
    return ys.view(len(ts), P, N, d)
