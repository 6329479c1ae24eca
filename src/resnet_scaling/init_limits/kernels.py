"""Kernels of wide residual networks at initialisation (docs/maths.md §6, doubly infinite limit).

Width ``D`` and depth ``L`` to infinity, behind a Gaussian random input layer
``Y_0(x) = U x`` (``U`` with i.i.d. N(0, 1/d_in) entries), with the shallow block

    Y_{k+1} = Y_k + b_k + W_k φ(Y_k),   W_ij ~ N(0, σ_w²/(D L)),  b_i ~ N(0, σ_b²/L):

the empirical kernel ``⟨Y_t(x), Y_t(x')⟩ / D`` converges to the solution of

    dk/dt = σ_b² + σ_w² E[φ(u) φ(u')],   (u, u') ~ N(0, K_t),

with ``K_0 = X Xᵀ / d_in``. For ReLU, ``E[φ(u)φ(u')] = √(k k')/(2π) (sin θ + (π − θ) cos θ)``
and on the diagonal ``k_t = (k_0 + 2σ_b²/σ_w²) e^{σ_w² t/2} − 2σ_b²/σ_w²``.

At infinite width the depth-``L`` network follows the discrete recursions of
:func:`kernel_recursion` exactly (the three architectures of the input-correlation
study); their ``L → ∞`` limit for the 1/L-scaled block is the ODE above.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ..config import section_settings
from ..io import stable_seed
from ..training.activations import get_activation

#: Architectures whose infinite-width kernels :func:`kernel_recursion` propagates.
KINDS = ("scaled", "residual", "feedforward")

#: Fluctuations of the empirical kernel at width D are O(D^{-1/2}) (central limit theorem).
KERNEL_WIDTH_RATE = -0.5

_GH_NODES = 48


def _gauss_hermite(n: int = _GH_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(Z)], Z ~ N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2.0 * math.pi)


def relu_expected_product(kii, kjj, kij):
    """E[relu(u) relu(u')] for (u, u') ~ N(0, [[kii, kij], [kij, kjj]]) (arc-cosine kernel)."""
    kii, kjj, kij = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (kii, kjj, kij)))
    norm = np.sqrt(np.clip(kii * kjj, 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, kij / np.where(norm > 0, norm, 1.0), 1.0)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    return norm / (2.0 * math.pi) * (np.sin(theta) + (math.pi - theta) * np.cos(theta))


def expected_product(activation: str, kii, kjj, kij):
    """E[φ(u) φ(u')] for (u, u') ~ N(0, [[kii, kij], [kij, kjj]]).

    ReLU in closed form; any other activation by tensor-product Gauss–Hermite quadrature
    (u = √kii z₁, u' = √kjj (ρ z₁ + √(1−ρ²) z₂)).
    """
    if activation == "relu":
        return relu_expected_product(kii, kjj, kij)
    phi = get_activation(activation).fn
    kii, kjj, kij = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (kii, kjj, kij)))
    si, sj = np.sqrt(np.clip(kii, 0, None)), np.sqrt(np.clip(kjj, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.clip(np.where(si * sj > 0, kij / (si * sj), 0.0), -1.0, 1.0)
    z, w = _gauss_hermite()
    z1, z2 = z[:, None], z[None, :]
    w2 = w[:, None] * w[None, :]
    shape = kii.shape
    si, sj, rho = (a.reshape(-1, 1, 1) for a in (si, sj, rho))
    u = si * z1
    v = sj * (rho * z1 + np.sqrt(1.0 - rho**2) * z2)
    fu = phi(torch.as_tensor(u)).numpy()
    fv = phi(torch.as_tensor(v)).numpy()
    return (fu * fv * w2).sum(axis=(1, 2)).reshape(shape)


def kernel_map(K: np.ndarray, activation: str) -> np.ndarray:
    """F(K)_ij = E[φ(u_i) φ(u_j)], u ~ N(0, K), for a stack of Gram matrices (..., m, m)."""
    K = np.asarray(K, dtype=float)
    diag = np.diagonal(K, axis1=-2, axis2=-1)
    return expected_product(activation, diag[..., :, None], diag[..., None, :], K)


def input_gram(inputs) -> np.ndarray:
    """K_0 = X Xᵀ / d_in: the kernel behind a Gaussian input layer with N(0, 1/d_in) entries."""
    X = np.asarray(inputs, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"inputs must be a list of equal-length vectors, got shape {X.shape}")
    return X @ X.T / X.shape[1]


def kernel_ode(
    K0: np.ndarray, sigma_w: float, sigma_b: float, activation: str, times
) -> np.ndarray:
    """Solve dK/dt = σ_b² + σ_w² F(K_t) on the whole Gram matrix; returns K at ``times`` (T, m, m)."""
    K0 = np.asarray(K0, dtype=float)
    m = K0.shape[0]
    times = np.asarray(times, dtype=float)

    def rhs(_t, y):
        return (sigma_b**2 + sigma_w**2 * kernel_map(y.reshape(m, m), activation)).ravel()

    sol = solve_ivp(
        rhs, (0.0, float(times.max())), K0.ravel(), t_eval=times, method="DOP853",
        rtol=1e-11, atol=1e-13,
    )
    if not sol.success:
        raise RuntimeError(f"kernel ODE failed: {sol.message}")
    return sol.y.T.reshape(len(times), m, m)


def relu_diagonal(k0, sigma_w: float, sigma_b: float, t):
    """Closed form of the ReLU kernel ODE on the diagonal: dk/dt = σ_b² + σ_w² k/2."""
    c = 2.0 * sigma_b**2 / sigma_w**2
    return (np.asarray(k0, dtype=float) + c) * np.exp(sigma_w**2 * np.asarray(t, dtype=float) / 2.0) - c


def kernel_recursion(
    K0: np.ndarray, sigma_w: float, sigma_b: float, activation: str, depth: int, kind: str
) -> np.ndarray:
    """Infinite-width Gram matrices K_0..K_depth of one architecture, shape (depth+1, m, m).

    ``scaled``:      Y ← Y + b + W φ(Y), Var W = σ_w²/(D L), Var b = σ_b²/L:  K ← K + (σ_b² + σ_w² F(K))/L
    ``residual``:    the same block unscaled (Var W = σ_w²/D, Var b = σ_b²):  K ← K + σ_b² + σ_w² F(K)
    ``feedforward``: Y ← b + W φ(Y) (no skip connection):                     K ← σ_b² + σ_w² F(K)

    The coordinates stay i.i.d. Gaussian across units at infinite width because every
    W_k is fresh, so these recursions are exact there (docs/maths.md §6).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {KINDS}")
    K = np.asarray(K0, dtype=float)
    out = [K]
    for _ in range(depth):
        inc = sigma_b**2 + sigma_w**2 * kernel_map(K, activation)
        if kind == "scaled":
            K = K + inc / depth
        elif kind == "residual":
            K = K + inc
        else:
            K = inc
        out.append(K)
    return np.stack(out)


def correlation(K: np.ndarray) -> np.ndarray:
    """Correlation matrix K_ij / √(K_ii K_jj) of a stack of Gram matrices."""
    d = np.sqrt(np.diagonal(K, axis1=-2, axis2=-1))
    return K / (d[..., :, None] * d[..., None, :])


def sample_kernels(
    inputs,
    width: int,
    depth: int,
    sigma_w: float,
    sigma_b: float,
    activation: str,
    n_networks: int,
    seed: int,
    record_every: int | None = None,
    method: str = "rows",
    chunk: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical kernels ⟨Y_t(x_i), Y_t(x_j)⟩/D of ``n_networks`` independent networks.

    Returns ``times`` (T,) and kernels (n_networks, T, m, m) at t = k/L for the recorded k
    (every ``record_every`` layers, default only t = 0 and t = 1).

    ``method="weights"`` draws every D×D matrix W_k. ``method="rows"`` (default) uses that,
    given the past, the rows of W_k are i.i.d. N(0, σ_w²/(DL) I) and independent of
    Φ_k = φ(Y_k) (D × m), so W_k Φ_k has i.i.d. rows N(0, σ_w²/(DL) Φ_kᵀΦ_k): the same
    joint law of the m outputs at O(D m²) instead of O(D²) per layer. Tests check that
    both methods give the same law.
    """
    if method not in ("rows", "weights"):
        raise ValueError(f"unknown method {method!r}; expected 'rows' or 'weights'")
    act = get_activation(activation).fn
    K0 = input_gram(inputs)
    m = K0.shape[0]
    X = torch.as_tensor(np.asarray(inputs, dtype=float))
    d_in = X.shape[1]
    record_every = record_every or depth
    steps = sorted(set(range(0, depth + 1, record_every)) | {depth})
    times = np.array(steps, dtype=float) / depth
    gen = torch.Generator().manual_seed(seed)
    sw, sb = sigma_w / math.sqrt(width * depth), sigma_b / math.sqrt(depth)
    results = []
    for start in range(0, n_networks, chunk):
        S = min(chunk, n_networks - start)
        U = _randn(gen, (S, width, d_in)) / math.sqrt(d_in)
        Y = U @ X.T  # (S, D, m)
        rec = []
        for k in range(depth + 1):
            if k in steps:
                rec.append(Y.transpose(1, 2) @ Y / width)
            if k == depth:
                break
            Phi = act(Y)
            b = _randn(gen, (S, width, 1)) * sb
            if method == "weights":
                W = _randn(gen, (S, width, width)) * sw
                Y = Y + b + W @ Phi
            else:
                cov = Phi.transpose(1, 2) @ Phi * sw**2  # (S, m, m)
                R = _psd_sqrt(cov)
                G = _randn(gen, (S, width, m))
                Y = Y + b + G @ R.transpose(1, 2)
        results.append(torch.stack(rec, dim=1))
    return times, torch.cat(results).numpy()


def _randn(gen: torch.Generator, shape) -> torch.Tensor:
    """Standard normals drawn in float32 (several times faster on CPU) and used in float64."""
    return torch.randn(shape, generator=gen, dtype=torch.float32).double()


def _psd_sqrt(C: torch.Tensor) -> torch.Tensor:
    """A square root R with R Rᵀ = C of a batch of PSD matrices (symmetric eigen-root)."""
    evals, evecs = torch.linalg.eigh(C)
    return evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)


def kernel_width_table(cfg: dict, seed: int = 0):
    """Tidy tables of the doubly infinite limit (deliverable 6).

    Returns ``(errors, trajectory)``: ``errors`` has one row per (width, entry type,
    reference) with the RMS over networks of |K̂_1 − k_1| and a bootstrap 95 % interval;
    ``trajectory`` has per (width, t, entry) the mean empirical kernel with a t-interval,
    the kernel ODE and (diagonal, ReLU) the closed form.
    """
    cfg = section_settings("init_limits.kernels", cfg)
    import pandas as pd

    inputs = cfg["inputs"]
    act, sw, sb, L = cfg["activation"], cfg["sigma_w"], cfg["sigma_b"], cfg["depth"]
    n_net, n_boot = cfg["networks"], cfg["bootstrap"]
    K0 = input_gram(inputs)
    m = K0.shape[0]
    rec_every = max(1, L // cfg["time_points"])
    iu = np.triu_indices(m)
    is_diag = iu[0] == iu[1]
    err_rows, traj_rows = [], []
    ode_cache: dict[tuple, np.ndarray] = {}
    for width in cfg["widths"]:
        times, Ks = sample_kernels(
            inputs, width, L, sw, sb, act, n_net, stable_seed(seed, "kernels", width),
            record_every=rec_every,
        )
        key = tuple(times)
        if key not in ode_cache:
            ode_cache[key] = kernel_ode(K0, sw, sb, act, times)
        ode = ode_cache[key]
        disc = kernel_recursion(K0, sw, sb, act, L, "scaled")[np.round(times * L).astype(int)]
        final = Ks[:, -1][:, iu[0], iu[1]]  # (n_net, entries)
        rng = np.random.default_rng(stable_seed(seed, "kernels-boot", width))
        for ref_name, ref in (("ode", ode[-1]), ("recursion", disc[-1])):
            err2 = (final - ref[iu]) ** 2
            for entry, mask in (("diagonal", is_diag), ("off-diagonal", ~is_diag)):
                per_net = err2[:, mask].mean(axis=1)
                idx = rng.integers(0, n_net, size=(n_boot, n_net))
                boot = np.sqrt(per_net[idx].mean(axis=1))
                err_rows.append(dict(
                    width=width, depth=L, entry=entry, reference=ref_name, networks=n_net,
                    rms_error=float(np.sqrt(per_net.mean())),
                    ci_low=float(np.quantile(boot, 0.025)),
                    ci_high=float(np.quantile(boot, 0.975)),
                    depth_bias=float(np.sqrt(((disc[-1] - ode[-1])[iu][mask] ** 2).mean())),
                ))
        means = Ks.mean(axis=0)
        half = 1.96 * Ks.std(axis=0, ddof=1) / math.sqrt(n_net)
        closed = relu_diagonal(np.diag(K0), sw, sb, times[:, None]) if act == "relu" else None
        for ti, t in enumerate(times):
            for e, (i, j) in enumerate(zip(*iu)):
                traj_rows.append(dict(
                    width=width, t=float(t), entry=f"k({i + 1},{j + 1})",
                    kind="diagonal" if i == j else "off-diagonal",
                    empirical=float(means[ti, i, j]),
                    ci_low=float(means[ti, i, j] - half[ti, i, j]),
                    ci_high=float(means[ti, i, j] + half[ti, i, j]),
                    ode=float(ode[ti, i, j]),
                    recursion=float(disc[ti, i, j]),
                    closed_form=float(closed[ti, i]) if closed is not None and i == j else np.nan,
                ))
    return pd.DataFrame(err_rows), pd.DataFrame(traj_rows)
