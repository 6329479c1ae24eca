"""Layer sequences of trained networks and their weight paths (MATH.md §1, §3).

From one training output (all seeds of one experiment and depth) this module takes the
layer sequences in the paper's convention (``z = A h + b``), seed-major:

    A (S, L, d, d),  b (S, L, d),  δ (S, L)        the trained parameters
    M_k = δ_k A_k,   m_k = δ_k b_k                 the effective residual weights
    W^A_L(k/L) = Σ_{j<k} M_j,  W^b_L(k/L) = Σ_{j<k} m_j,   k = 0..L   (the weight paths)

For per-layer δ the original study took its statistics on ``|δ_k| A_k``; these differ from
``M_k`` only by the signs of δ_k (same norms, different increments), and are available as
the quantities ``M_abs``, ``m_abs`` (:func:`quantity_sequences`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .io import read_npz, write_csv, write_npz

#: Quantities every network has, and the two extra ones of per-layer δ.
BASE_QUANTITIES = ("A", "b", "delta", "M", "m")
ABS_QUANTITIES = ("M_abs", "m_abs")
#: δ is a trained parameter only for these types; otherwise it is 1 or L^{-α}, known exactly.
TRAINED_DELTA = ("shared", "multi")


@dataclass
class TrainedWeights:
    """All seeds of one trained (experiment, depth), seed-major and in the paper's convention."""

    A: np.ndarray  # (S, L, d, d)
    b: np.ndarray  # (S, L, d)
    delta: np.ndarray  # (S, L), the effective δ_k
    seeds: np.ndarray  # (S,)
    status: np.ndarray  # (S,) converged | stopped | diverged
    experiment: str
    depth: int
    delta_type: str
    activation: str
    dataset: str = ""
    losses: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (S,) final values
    epochs: np.ndarray | None = None

    @property
    def finite(self) -> np.ndarray:
        """(S,) whether every weight of the network is finite."""
        S = self.A.shape[0]
        return (
            np.isfinite(self.A.reshape(S, -1)).all(axis=1)
            & np.isfinite(self.b.reshape(S, -1)).all(axis=1)
            & np.isfinite(self.delta).all(axis=1)
        )


def effective_weights(A: np.ndarray, b: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M_k = δ_k A_k and m_k = δ_k b_k for seed-major arrays A (S,L,d,d), b (S,L,d), δ (S,L)."""
    return A * delta[..., None, None], b * delta[..., None]


def weight_path(X: np.ndarray) -> np.ndarray:
    """The path W_L(k/L) = Σ_{j<k} X_j at k = 0..L, shape (S, L+1, ...) for X of shape (S, L, ...)."""
    W = np.zeros((X.shape[0], X.shape[1] + 1, *X.shape[2:]), dtype=X.dtype)
    np.cumsum(X, axis=1, out=W[:, 1:])
    return W


def layer_norms(X: np.ndarray) -> np.ndarray:
    """Frobenius (Euclidean, absolute value) norm of every layer: (S, L) for X of shape (S, L, ...)."""
    flat = X.reshape(X.shape[0], X.shape[1], -1)
    return np.sqrt(np.einsum("slj,slj->sl", flat, flat))


def increment_norms(X: np.ndarray) -> np.ndarray:
    """‖X_{k+1} − X_k‖ for k = 0..L−2: (S, L−1)."""
    return layer_norms(np.diff(X, axis=1))


def quantity_sequences(w: TrainedWeights) -> dict[str, np.ndarray]:
    """The layer sequences whose statistics are taken, by quantity name, each (S, L, ...).

    δ is included only when it is trained (``shared``, ``multi``); ``M_abs = |δ| A`` and
    ``m_abs = |δ| b`` only for per-layer δ (for every other type they equal M and m).
    """
    M, m = effective_weights(w.A, w.b, w.delta)
    seqs = {"A": w.A, "b": w.b}
    if w.delta_type in TRAINED_DELTA:
        seqs["delta"] = w.delta
    seqs["M"], seqs["m"] = M, m
    if w.delta_type == "multi":
        seqs["M_abs"], seqs["m_abs"] = effective_weights(w.A, w.b, np.abs(w.delta))
    return seqs


def _final(history: np.ndarray) -> np.ndarray:
    """The last finite value of each row of an (S, E) history padded with NaN (NaN if none)."""
    history = np.atleast_2d(np.asarray(history, dtype=float))
    if history.shape[1] == 0:
        return np.full(history.shape[0], np.nan)
    finite = np.isfinite(history)
    last = history.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    out = history[np.arange(history.shape[0]), last]
    return np.where(finite.any(axis=1), out, np.nan)


def from_training(arrays: dict[str, np.ndarray], meta: dict) -> TrainedWeights:
    """Wrap the arrays and metadata of a training output ``results/train/{exp}/depth_{L}.npz``."""
    missing = [key for key in ("A", "b", "delta") if key not in arrays]
    if missing:
        raise ValueError(f"training output lacks the arrays {missing}")
    A = np.asarray(arrays["A"], dtype=np.float64)
    if A.ndim != 4 or A.shape[2] != A.shape[3]:
        raise ValueError(f"array A must have shape (S, L, d, d), got {A.shape}")
    S, L = A.shape[:2]
    config = meta.get("config") or {}
    for key in ("delta", "activation"):
        if key not in config:
            raise ValueError(f"training output metadata lacks config.{key}")
    losses = {
        name: _final(arrays[key])
        for name, key in (("train_loss", "train_loss"), ("test_loss", "test_loss"), ("epoch_loss", "epoch_loss"))
        if key in arrays
    }
    return TrainedWeights(
        A=A,
        b=np.asarray(arrays["b"], dtype=np.float64),
        delta=np.asarray(arrays["delta"], dtype=np.float64).reshape(S, L),
        seeds=np.asarray(arrays.get("seeds", np.arange(S))).astype(int),
        status=np.asarray(arrays.get("status", np.full(S, "converged"))).astype(str),
        experiment=str(meta.get("experiment", "")),
        depth=int(meta.get("depth", L)),
        delta_type=str(config["delta"]),
        activation=str(config["activation"]),
        dataset=str(meta.get("dataset", config.get("dataset", ""))),
        losses=losses,
        epochs=np.asarray(arrays["epochs"]).astype(int) if "epochs" in arrays else None,
    )


def load_training(path: str | os.PathLike) -> TrainedWeights:
    """Read a training output; the depth recorded in the file must match its arrays."""
    arrays, meta = read_npz(path)
    w = from_training(arrays, meta)
    if w.A.shape[1] != w.depth:
        raise ValueError(f"{path}: metadata says depth {w.depth} but A has {w.A.shape[1]} layers")
    return w


def layer_table(w: TrainedWeights) -> pd.DataFrame:
    """Tidy per-layer table: one row per (seed, quantity, layer k) with the norm ‖X_k‖ and
    the increment ‖X_{k+1} − X_k‖ (NaN for the last layer), t = k/L."""
    S, L = w.A.shape[:2]
    frames = []
    for name, X in quantity_sequences(w).items():
        norm = layer_norms(X)
        inc = np.full((S, L), np.nan)
        inc[:, :-1] = increment_norms(X)
        frames.append(
            pd.DataFrame(
                {
                    "quantity": name,
                    "seed": np.repeat(w.seeds, L),
                    "status": np.repeat(w.status, L),
                    "k": np.tile(np.arange(L), S),
                    "norm": norm.ravel(),
                    "increment": inc.ravel(),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "depth", L)
    table.insert(0, "experiment", w.experiment)
    table.insert(table.columns.get_loc("k") + 1, "t", table["k"] / L)
    return table


def save_weights(w: TrainedWeights, path: str | os.PathLike) -> None:
    """Write the extracted sequences and weight paths (keys: A, b, delta, M, m, W_A, W_b, seeds,
    status, epochs, final_<loss>) with the experiment's metadata, atomically."""
    M, m = effective_weights(w.A, w.b, w.delta)
    extra = {f"final_{name}": value for name, value in w.losses.items()}
    if w.epochs is not None:
        extra["epochs"] = w.epochs
    write_npz(
        path,
        metadata={
            "experiment": w.experiment,
            "depth": w.depth,
            "delta_type": w.delta_type,
            "activation": w.activation,
            "dataset": w.dataset,
        },
        A=w.A,
        b=w.b,
        delta=w.delta,
        M=M,
        m=m,
        W_A=weight_path(M),
        W_b=weight_path(m),
        seeds=w.seeds,
        status=w.status.astype("U16"),
        **extra,
    )


def load_weights(path: str | os.PathLike) -> TrainedWeights:
    """Read a file written by :func:`save_weights` back into :class:`TrainedWeights`."""
    arrays, meta = read_npz(path)
    losses = {key[len("final_"):]: arrays[key] for key in arrays if key.startswith("final_")}
    return TrainedWeights(
        A=arrays["A"],
        b=arrays["b"],
        delta=arrays["delta"],
        seeds=arrays["seeds"].astype(int),
        status=arrays["status"].astype(str),
        experiment=meta["experiment"],
        depth=int(meta["depth"]),
        delta_type=meta["delta_type"],
        activation=meta["activation"],
        dataset=meta.get("dataset", ""),
        losses=losses,
        epochs=arrays["epochs"].astype(int) if "epochs" in arrays else None,
    )


def extract(train_path: str | os.PathLike, weights_path: str | os.PathLike, table_path: str | os.PathLike) -> TrainedWeights:
    """The extraction stage for one (experiment, depth): weights file and per-layer table."""
    w = load_training(train_path)
    save_weights(w, weights_path)
    write_csv(table_path, layer_table(w))
    return w
