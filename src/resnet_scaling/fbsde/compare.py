"""A network's backpropagation against its limit's: adjoint and gradient errors, and the
roughness of weight and gradient sequences (docs/maths.md §5)."""

from __future__ import annotations

import numpy as np
import torch

from ..scaling.exponents import loglog_fit
from ..scaling.statistics import sequence_statistics
from .backprop import LimitBackprop, NetworkBackprop


def _frob(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return x.pow(2).sum(dim=dims).sqrt()


def compare(net: NetworkBackprop, lim: LimitBackprop) -> dict[str, np.ndarray]:
    """Per-path errors of a network against its limit on the layer grid, each (P,):

    - ``adjoint_sup``: sup over layers k and inputs of |p_k − P_{k/L}|;
    - ``grad_A_rms``: (Σ_k ‖∂ℓ/∂M_k − G_k‖² / Σ_k ‖G_k‖²)^{1/2}, the relative error of the
      per-layer gradients in root mean square over layers (``grad_b_rms`` for the biases);
    - ``grad_A_sup``: max_k ‖∂ℓ/∂M_k − G_k‖ / max_k ‖G_k‖.
    """
    _, Pk, G, g = lim.on_layers(net.depth)
    adj = (net.p - Pk).pow(2).sum(-1).sqrt().amax(dim=(0, 2))
    dG = _frob(net.grad_M - G, (2, 3))  # (L, P)
    nG = _frob(G, (2, 3))
    dg = _frob(net.grad_m - g, (2,))
    ng = _frob(g, (2,))
    out = {
        "adjoint_sup": adj,
        "grad_A_rms": _frob(dG, (0,)) / _frob(nG, (0,)),
        "grad_b_rms": _frob(dg, (0,)) / _frob(ng, (0,)),
        "grad_A_sup": dG.amax(0) / nG.amax(0),
    }
    return {k: v.numpy() for k, v in out.items()}


def roughness(X) -> np.ndarray:
    """RMS increment over RMS norm, ``(Σ_k ‖X_{k+1} − X_k‖² / L)^{1/2} / (Σ_k ‖X_k‖² / L)^{1/2}``,
    per network of a sequence (S, L, …): of order 1/L for samples of a smooth function of t,
    L^{-1/2} for a Brownian-like path, 1 for white-noise-like layers (the increments of a
    Brownian path). Built from the §3 statistics, without the log bias of the max ones."""
    X = X.numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    st = sequence_statistics(X, statistics=["quadratic_variation", "rms_norm"])
    return np.sqrt(st["quadratic_variation"] / X.shape[1]) / st["rms_norm"]


def slope_columns(depths, errors) -> dict:
    """The log-log slope of errors against depth (:func:`resnet_scaling.scaling.exponents.loglog_fit`)
    as the columns of the slope tables: slope, 95 % interval, standard error, depths used."""
    fit = loglog_fit(depths, errors)
    return {"slope": fit.slope, "ci_low": fit.ci_low, "ci_high": fit.ci_high, "stderr": fit.stderr, "n_depths": fit.n}
