"""Deliverable 2: the output correlation of two inputs against depth, against the
infinite-width kernel recursion and its L → ∞ limit (:mod:`resnet_scaling.init_limits.kernels`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import section_settings
from ..io import stable_seed
from ..sde.tensors import DTYPE
from ..training.activations import get_activation
from .kernels import correlation as kernel_correlation
from .kernels import input_gram, kernel_ode, kernel_recursion
from .sampling import randn32
from .sampling import seeded_generator
from .sampling import t_interval


def simulate_correlation(
    kind: str,
    activation: str,
    inputs,
    width: int,
    depths,
    sigma_w: float,
    sigma_b: float,
    n_networks: int,
    seed: int,
) -> dict[int, np.ndarray]:
    """Cosine ⟨Y(x), Y(x')⟩/(‖Y(x)‖‖Y(x')‖) of the outputs of ``n_networks`` networks (explicit weights).

    Behind a Gaussian input layer Y_0 = U x (U with N(0, 1/d_in) entries), the blocks of
    :func:`resnet_scaling.init_limits.kernels.kernel_recursion`: ``scaled`` (a separate network of each
    depth L, Var W = σ_w²/(D L)), ``residual`` and ``feedforward`` (unscaled; the state at
    layer l of one deep network is the output of the depth-l network). Returns depth →
    cosines (n_networks,).
    """
    act = get_activation(activation).fn
    X = torch.as_tensor(np.asarray(inputs, dtype=float), dtype=DTYPE)
    d_in = X.shape[1]
    depths = sorted(int(L) for L in depths)
    S, D = n_networks, width

    def cosine(Y):
        y0, y1 = Y[..., 0], Y[..., 1]
        return ((y0 * y1).sum(-1) / (y0.norm(dim=-1) * y1.norm(dim=-1))).numpy()

    def run(depth, scale, record):
        gen = seeded_generator(seed, "correlation", kind, activation, depth if kind == "scaled" else "deep")
        Y = randn32(gen, (S, D, d_in)) / math.sqrt(d_in) @ X.T  # (S, D, 2)
        out = {}
        for k in range(depth):
            W = randn32(gen, (S, D, D)) * (sigma_w / math.sqrt(D * scale))
            b = randn32(gen, (S, D, 1)) * (sigma_b / math.sqrt(scale))
            inc = b + W @ act(Y)
            Y = inc if kind == "feedforward" else Y + inc
            if k + 1 in record:
                out[k + 1] = cosine(Y)
        return out

    if kind == "scaled":
        result = {}
        for L in depths:
            result.update(run(L, L, {L}))
        return result
    if kind not in ("residual", "feedforward"):
        raise ValueError(f"unknown network kind {kind!r}")
    return run(depths[-1], 1, set(depths))


def correlation_table(cfg: dict, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Deliverable 2: output correlation of two inputs against depth, with the infinite-width theory.

    One row per (kind, activation, depth): the mean cosine over networks with a 95 %
    t-interval and the theory (the exact infinite-width recursion; for ``scaled`` also its
    L → ∞ limit, the kernel ODE at t = 1).
    """
    cfg = section_settings("init_limits.correlation", cfg)
    inputs = cfg["inputs"]
    K0 = input_gram(inputs)
    rows = []
    for net in tqdm(cfg["networks"], disable=not progress, desc="correlation"):
        kind, act = net["kind"], net["activation"]
        sw, sb = net.get("sigma_w", cfg["sigma_w"]), net.get("sigma_b", cfg["sigma_b"])
        depths = sorted(cfg["depths"])
        cos = simulate_correlation(
            kind, act, inputs, cfg["width"], depths, sw, sb, cfg["networks_per_depth"],
            stable_seed(seed, "correlation"),
        )
        limit = float(kernel_correlation(kernel_ode(K0, sw, sb, act, [1.0])[0])[0, 1]) if kind == "scaled" else np.nan
        deep = kernel_recursion(K0, sw, sb, act, depths[-1], kind) if kind != "scaled" else None
        for L in depths:
            theory_K = kernel_recursion(K0, sw, sb, act, L, "scaled")[-1] if kind == "scaled" else deep[L]
            mean, half = t_interval(cos[L])
            rows.append(dict(
                kind=kind, activation=act, sigma_w=sw, sigma_b=sb, width=cfg["width"],
                networks=len(cos[L]), depth=L, correlation=float(mean),
                ci_low=float(mean - half), ci_high=float(mean + half),
                theory=float(kernel_correlation(theory_K)[0, 1]), theory_limit=limit,
                input_correlation=float(kernel_correlation(K0)[0, 1]),
            ))
    return pd.DataFrame(rows)
