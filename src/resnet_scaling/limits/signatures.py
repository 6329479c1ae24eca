"""Pathwise signatures of a trained network's limit, measured on its own path (docs/maths.md §4,
"Judging a trained network's limit").

A trained network is one realisation selected by the data, so its limit is judged on its own
layers, never against fresh noise:

- the realised quadratic variation of the hidden state, ``QV_L = Σ_k |h_{k+1} − h_k|²`` (mean over
  inputs): O(1), flat in L, under an SDE limit; O(1/L) under an ODE limit;
- the coarsened network: N blocks of L/N consecutive layers with h frozen inside a block,
  ``h ← h + Σ_{k∈block} δ_k σ(A_k h + b_k)`` (the whole σ, no Taylor remainder); its relative output
  error against the fine network must not grow with L at fixed N (a pathwise limit) and falls with N;
- the same two for the adjoint ``p_k`` of the loss ``½ Σ_n |h_L − y_n|²``, whose coarsened version is
  the exact adjoint of the coarsened network;
- the update (trained − initial) beside the weights, and the initial network's quadratic variation,
  so what training added to an initialisation that already has a shape is visible.

All of it per network, in float64, streaming over seeds so memory does not grow with the number
of depths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..sde.tensors import as_activation, as_tensor
from ..training.activations import Activation
from .network import network_adjoint_paths
from .pathwise import block_edges

#: Quantities measured on each network (rows of ``results/limits/pathwise.csv``).
HIDDEN_QV = "hidden_state_quadratic_variation"
ADJOINT_QV = "adjoint_quadratic_variation"
COARSENING = "coarsening_error"
ADJOINT_COARSENING = "adjoint_coarsening_error"
INITIAL_QV = "initial_hidden_state_quadratic_variation"
UPDATE_NORM = "update_rms_norm"
WEIGHT_NORM = "weight_rms_norm"
QUANTITIES = (HIDDEN_QV, ADJOINT_QV, COARSENING, ADJOINT_COARSENING, INITIAL_QV, UPDATE_NORM, WEIGHT_NORM)

#: Layers × networks × inputs × width of one path held at once (64 MB of float64; a chunk holds
#: about six such arrays): a deep network is processed a few seeds at a time, a shallow one whole.
MAX_CHUNK_ELEMENTS = 2**23


@dataclass
class NetworkPaths:
    """The fine forward and backward paths of P networks on N inputs: h, p (L+1, P, N, d)."""

    h: torch.Tensor
    p: torch.Tensor


def fine_paths(A, b, delta, activation: str | Activation, x, y) -> NetworkPaths:
    """Hidden states and adjoints of the networks ``h_{k+1} = h_k + δ_k σ(A_k h_k + b_k)``.

    ``A`` (P, L, d, d), ``b`` (P, L, d), ``delta`` (P, L) effective δ_k (paper convention, as on
    disk); ``x``, ``y`` (N, d). The adjoint is that of ``½ Σ_n |h_L^n − y^n|²``: ``p_L = h_L − y``,
    ``p_k = p_{k+1} + δ_k A_kᵀ(σ'(z_k) ⊙ p_{k+1})`` (the engine's explicit adjoint, docs/maths.md §5,
    in the compiled loops of :mod:`..sde.compiled` where they apply).
    """
    h, p, _, _, _ = network_adjoint_paths(A, b, delta, activation, x, y, gradients=False)
    return NetworkPaths(h, p)


def coarse_paths(A, b, delta, activation: str | Activation, x, y, n_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``h_L`` and input adjoint ``p_0`` of the networks coarsened to ``n_blocks`` blocks.

    Inside a block h is frozen at the block's first state: ``F_n(h) = h + Σ_{k∈n} δ_k σ(A_k h + b_k)``
    with the whole σ; the adjoint is the exact adjoint of the coarse map,
    ``p ← p + Σ_{k∈n} δ_k A_kᵀ(σ'(A_k h_n + b_k) ⊙ p)``, from ``p_L = h_L^coarse − y``. With one
    layer per block this is the fine network. Returns (P, N, d) each.
    """
    act = as_activation(activation)
    A, b, delta = as_tensor(A), as_tensor(b), as_tensor(delta)
    P, L = A.shape[:2]
    edges = block_edges(L, n_blocks)
    h = as_tensor(x).expand(P, *as_tensor(x).shape[-2:]).clone()
    # per block σ'(z) for the backward sweep: from the σ(z) of the forward where the activation
    # gives its slope from its value (tanh, ReLU: no second product and σ), else from z again
    starts, slopes = [], []
    for e0, e1 in zip(edges[:-1], edges[1:]):
        starts.append(h)
        z = torch.einsum("pbij,pnj->pbni", A[:, e0:e1], h) + b[:, e0:e1, None, :]
        s = act.fn(z)
        if act.grad_from_value is not None:
            slopes.append(torch.empty_like(s))
            act.grad_from_value(s, slopes[-1])
        h = h + (delta[:, e0:e1, None, None] * s).sum(1)
    p = h - as_tensor(y).expand_as(h)
    for n in range(len(edges) - 2, -1, -1):
        e0, e1 = edges[n], edges[n + 1]
        if slopes:
            slope = slopes.pop()
        else:
            slope = act.grad(torch.einsum("pbij,pnj->pbni", A[:, e0:e1], starts[n]) + b[:, e0:e1, None, :])
        u = delta[:, e0:e1, None, None] * slope * p[:, None]
        p = p + torch.einsum("pbij,pbni->pnj", A[:, e0:e1], u)
    return h, p


def quadratic_variation(path: torch.Tensor) -> torch.Tensor:
    """``Σ_k |X_{k+1} − X_k|²`` per network, mean over inputs: path (L+1, P, N, d) → (P,)."""
    return (path[1:] - path[:-1]).pow(2).sum(dim=(0, 3)).mean(dim=1)


def _rms(v: torch.Tensor) -> torch.Tensor:
    """RMS over inputs of the Euclidean norm: (P, N, d) → (P,)."""
    return v.pow(2).sum(-1).mean(-1).sqrt()


def layer_rms_norm(A: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``sqrt(mean_k ‖δ_k A_k‖_F²)`` per network: the size of the effective layers M_k. (P,)."""
    M = np.asarray(delta)[..., None, None] * np.asarray(A)
    return np.sqrt((M**2).sum(axis=(-1, -2)).mean(axis=1))


def network_signatures(
    A, b, delta, activation: str | Activation, x, y, blocks: Sequence[int], initial: tuple | None = None
) -> list[dict]:
    """Every signature of P networks of one depth, as rows (network index ``i``, ``quantity``,
    ``n_blocks`` (0 where none), ``value``).

    Relative coarsening errors: ``RMS_n |h_L^N − h_L| / RMS_n |h_L − h_0|`` forward and
    ``RMS_n |p_0^N − p_0| / RMS_n |p_0 − p_L|`` backward. The adjoint's quadratic variation is
    divided by ``mean_n |p_L|²`` so that depths with different final losses compare.
    ``initial``: (A, b, δ) of the same networks at initialisation, for the update and the
    initial quadratic variation. Blocks N with fewer than two layers per block are left out.
    """
    A, b, delta = as_tensor(A), as_tensor(b), as_tensor(delta)
    P, L = A.shape[:2]
    rows: list[dict] = []

    def add(quantity: str, values, n_blocks: int = 0) -> None:
        rows.extend({"i": i, "quantity": quantity, "n_blocks": n_blocks, "value": float(v)}
                    for i, v in enumerate(np.asarray(values, dtype=float)))

    fine = fine_paths(A, b, delta, activation, x, y)
    h, p = fine.h, fine.p
    add(HIDDEN_QV, quadratic_variation(h))
    add(ADJOINT_QV, quadratic_variation(p) / p[-1].pow(2).sum(-1).mean(-1))
    out_size, adj_size = _rms(h[-1] - h[0]), _rms(p[0] - p[-1])
    hL, p0 = h[-1], p[0]
    del fine, h, p
    for n in sorted({int(n) for n in blocks}):
        if 2 * n > L:
            continue
        hc, pc = coarse_paths(A, b, delta, activation, x, y, n)
        add(COARSENING, _rms(hc - hL) / out_size.clamp_min(1e-300), n)
        add(ADJOINT_COARSENING, _rms(pc - p0) / adj_size.clamp_min(1e-300), n)
    add(WEIGHT_NORM, layer_rms_norm(A.numpy(), delta.numpy()))
    if initial is not None:
        A0, b0, d0 = (np.asarray(a, dtype=np.float64) for a in initial)
        M, M0 = delta.numpy()[..., None, None] * A.numpy(), d0[..., None, None] * A0
        add(UPDATE_NORM, np.sqrt(((M - M0) ** 2).sum(axis=(-1, -2)).mean(axis=1)))
        h0 = fine_paths(A0, b0, d0, activation, x, y).h
        add(INITIAL_QV, quadratic_variation(h0))
    return rows


def chunked_signatures(
    A, b, delta, activation: str | Activation, x, y, blocks: Sequence[int], initial: tuple | None = None
) -> list[dict]:
    """:func:`network_signatures` a few networks at a time (at most :data:`MAX_CHUNK_ELEMENTS`
    layers × networks × inputs × width), so the memory of one call depends on neither P nor the
    other depths."""
    P, L, d = np.asarray(A).shape[:3]
    step = max(1, MAX_CHUNK_ELEMENTS // max(1, L * len(x) * d))
    rows = []
    for start in range(0, P, step):
        sl = slice(start, min(P, start + step))
        init = tuple(np.asarray(a)[sl] for a in initial) if initial is not None else None
        part = network_signatures(np.asarray(A)[sl], np.asarray(b)[sl], np.asarray(delta)[sl], activation, x, y,
                                  blocks, init)
        for r in part:
            r["i"] += start
        rows += part
    return rows


def load_with_initial(path):
    """The trained networks of a training output and, where the file holds them, the same networks
    at initialisation (``A_init``, ``b_init``, ``delta_init``) as (A, b, δ) arrays (else None)."""
    from ..io import check_training_name, read_npz
    from ..scaling.weights import from_training

    arrays, meta = read_npz(path)
    if "V" in arrays:
        raise ValueError(f"{path}: a two-matrix block h + δ V σ(A h + b); the pathwise signatures are measured on "
                         "one-matrix blocks only")
    try:
        w = from_training({k: v for k, v in arrays.items() if not k.endswith("_init")}, meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}; delete {path} and rerun the workflow to rebuild it") from None
    check_training_name(path, w.experiment, w.depth)
    keys = ("A_init", "b_init", "delta_init")
    initial = None
    if all(k in arrays for k in keys):
        S, L = w.A.shape[:2]
        initial = (np.asarray(arrays["A_init"], np.float64), np.asarray(arrays["b_init"], np.float64),
                   np.asarray(arrays["delta_init"], np.float64).reshape(S, L))
        if initial[0].shape != w.A.shape:
            raise ValueError(f"{path}: A_init has shape {initial[0].shape}, A {w.A.shape}; delete {path} and rerun")
    return w, initial


def experiment_signatures(train_paths: Sequence, x, y, blocks: Sequence[int], *, experiment: str,
                          progress: bool = False) -> "pd.DataFrame":
    """The signatures of every finite network of one experiment, one depth in memory at a time:
    rows experiment, depth, seed, status, quantity, n_blocks, value."""
    import pandas as pd

    from ..sde.tensors import progress as progress_bar

    rows = []
    for path in progress_bar(list(train_paths), progress, f"signatures {experiment}"):
        w, initial = load_with_initial(path)
        if w.experiment and experiment and w.experiment != experiment:
            raise ValueError(f"{path}: holds experiment {w.experiment!r}, not {experiment!r}")
        keep = np.flatnonzero(np.asarray(w.finite, bool))
        if not len(keep):
            continue
        # every network kept: the arrays themselves (an index would copy GBs at the paper's depths)
        sel = slice(None) if len(keep) == len(w.seeds) else keep
        init = tuple(a[sel] for a in initial) if initial is not None else None
        for r in chunked_signatures(w.A[sel], w.b[sel], w.delta[sel], w.activation, x, y, blocks, init):
            i = keep[r.pop("i")]
            rows.append({"experiment": experiment, "depth": int(w.depth), "seed": int(w.seeds[i]),
                         "status": str(w.status[i]), **r})
    return pd.DataFrame(rows, columns=["experiment", "depth", "seed", "status", "quantity", "n_blocks", "value"])
