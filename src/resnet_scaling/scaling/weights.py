"""Layer sequences of trained networks and their weight paths (docs/maths.md §1, §3).

From one training output (all seeds of one experiment and depth) this module takes the
layer sequences in the paper's convention (``z = A h + b``), seed-major:

    A (S, L, d, d),  b (S, L, d),  δ (S, L)        the trained parameters
    M_k = δ_k A_k,   m_k = δ_k b_k                 the effective residual weights
    W^A_L(k/L) = Σ_{j<k} M_j,  W^b_L(k/L) = Σ_{j<k} m_j,   k = 0..L   (the weight paths)

For per-layer δ the original study took its statistics on ``|δ_k| A_k``; these differ from
``M_k`` only by the signs of δ_k (same norms, different increments), and are available as
the quantities ``M_abs``, ``m_abs`` (:func:`quantity_sequences`).

The trend/noise decomposition (:func:`decompose`, docs/references.md) splits the weights of the
deepest networks into a trend L^{-β} Ā(k/L) common to all depths and seeds, and a residual
whose rescaled path is Brownian-like when the weights are diffusive.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import section_schema
from ..io import check_training_name, read_npz, write_csv

#: Statuses of a trained network: ``converged`` (epoch loss below ε), ``stopped`` (the
#: stopping rule's plateau: ``patience`` epochs without a ``min_improvement`` gain),
#: ``max_epochs`` (ran out of epochs: not converged) and ``diverged``, as the trainer reports them.
STATUSES = ("converged", "stopped", "max_epochs", "diverged")
#: Networks that enter the analysis by default: those the stopping rule ended (as in the
#: original study); diverged and non-converged ones are excluded and counted. The schema's
#: default of ``scaling.include_status``.
INCLUDE_STATUS = tuple(section_schema("scaling.include_status")["default"])
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
    stop_reason: np.ndarray | None = None  # (S,) the trainer's reason for each seed's status

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
    """M_k = δ_k A_k and m_k = δ_k b_k for seed-major arrays A (S,L,d,d), b (S,L,d), δ (S,L);
    A may hold any per-layer shape (a convolution kernel (S,L,c_out,c_in,k,k))."""
    def scale(X: np.ndarray) -> np.ndarray:
        return X * delta.reshape(delta.shape + (1,) * (X.ndim - delta.ndim))

    return scale(A), scale(b)


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


def quantities(delta_type: str) -> tuple[str, ...]:
    """Names of the layer sequences analysed for a δ type (see :func:`quantity_sequences`)."""
    names = ["A", "b"]
    if delta_type in TRAINED_DELTA:
        names.append("delta")
    names += ["M", "m"]
    if delta_type == "multi":
        names += ["M_abs", "m_abs"]
    return tuple(names)


def quantity_sequences(w: TrainedWeights) -> dict[str, np.ndarray]:
    """The layer sequences whose statistics are taken, by quantity name, each (S, L, ...).

    δ is included only when it is trained (``shared``, ``multi``); ``M_abs = |δ| A`` and
    ``m_abs = |δ| b`` only for per-layer δ (for every other type they equal M and m).
    """
    M, m = effective_weights(w.A, w.b, w.delta)
    sequences = {"A": w.A, "b": w.b, "delta": w.delta, "M": M, "m": m}
    if w.delta_type == "multi":
        sequences["M_abs"], sequences["m_abs"] = effective_weights(w.A, w.b, np.abs(w.delta))
    return {name: sequences[name] for name in quantities(w.delta_type)}


def _final(history: np.ndarray) -> np.ndarray:
    """The last finite value of each row of an (S, E) history padded with NaN (NaN if none)."""
    history = np.atleast_2d(np.asarray(history, dtype=float))
    if history.shape[1] == 0:
        return np.full(history.shape[0], np.nan)
    finite = np.isfinite(history)
    last = history.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    out = history[np.arange(history.shape[0]), last]
    return np.where(finite.any(axis=1), out, np.nan)


def training_labels(meta: dict) -> dict[str, str]:
    """δ type, activation and dataset of a training output, from its metadata."""
    config = meta.get("config") or {}
    for key in ("delta", "activation"):
        if key not in config:
            raise ValueError(f"training output metadata lacks config.{key}")
    return {
        "delta_type": str(config["delta"]),
        "activation": str(config["activation"]),
        "dataset": str(meta.get("dataset", config.get("dataset", ""))),
    }


def from_training(arrays: dict[str, np.ndarray], meta: dict) -> TrainedWeights:
    """Wrap the arrays and metadata of a training output ``results/train/{exp}/depth_{L}.npz``."""
    missing = [key for key in ("A", "b", "delta") if key not in arrays]
    if missing:
        raise ValueError(f"training output lacks the arrays {missing}")
    A = np.asarray(arrays["A"], dtype=np.float64)
    if A.ndim != 4 or A.shape[2] != A.shape[3]:
        raise ValueError(f"array A must have shape (S, L, d, d), got {A.shape}")
    S, L = A.shape[:2]
    labels = training_labels(meta)
    status = np.asarray(arrays.get("status", np.full(S, "converged"))).astype(str)
    epochs = np.asarray(arrays["epochs"]).astype(int) if "epochs" in arrays else None
    reasons = meta.get("stop_reason")
    stop_reason = np.asarray(reasons, dtype=str) if reasons is not None and len(reasons) == S else None
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
        status=status,
        experiment=str(meta.get("experiment", "")),
        depth=int(meta.get("depth", L)),
        losses=losses,
        epochs=epochs,
        stop_reason=stop_reason,
        **labels,
    )


def initial_weights(key: str) -> bool:
    """Whether an array of a training output holds initial weights (``A_init``, ``b_init``,
    ``delta_init``): the analysis of trained networks leaves them unread."""
    return key.endswith("_init")


def load_training(path: str | os.PathLike) -> TrainedWeights:
    """Read the trained networks of a training output, without its initial weights (left
    unread); the depth recorded in the file must match its arrays, and the experiment and
    depth those of its name (:func:`.io.check_training_name`)."""
    arrays, meta = read_npz(path, exclude=initial_weights)
    try:
        w = from_training(arrays, meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}; delete {path} and rerun the workflow to rebuild it") from None
    if w.A.shape[1] != w.depth:
        raise ValueError(f"{path}: metadata says depth {w.depth} but A has {w.A.shape[1]} layers; "
                         f"delete {path} and rerun the workflow to rebuild it")
    check_training_name(path, w.experiment, w.depth)
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


def extract(train_path: str | os.PathLike, table_path: str | os.PathLike) -> TrainedWeights:
    """The extraction stage for one (experiment, depth): the per-layer table of its training
    output. The weights themselves are not copied: every reader takes them from the training
    output (:func:`load_training`)."""
    w = load_training(train_path)
    write_csv(table_path, layer_table(w))
    return w


# -- weight paths and the trend/noise decomposition ---------------------------------------


def primary_quantity(delta_type: str) -> str:
    """The sequence the original study took its statistics on: ``|δ_k| A_k`` for per-layer δ, else A."""
    return "M_abs" if delta_type == "multi" else "A"


def included(w: TrainedWeights, include_status=INCLUDE_STATUS) -> np.ndarray:
    """(S,) mask of the seeds that enter fits and comparisons: finite weights, accepted status."""
    return w.finite & np.isin(w.status, list(include_status))


def selection(networks: list[TrainedWeights], include_status=INCLUDE_STATUS) -> list[np.ndarray]:
    """(S,) masks of the networks drawn in the figures: finite weights and an accepted status,
    as in the fits. If no network at all passes, every finite one is drawn, with a warning,
    so that one experiment whose training failed does not stop the others' figures."""
    masks = [included(w, include_status) for w in networks]
    if any(m.any() for m in masks):
        return masks
    warnings.warn(f"no network has a status in {list(include_status)}: drawing every finite network")
    return [w.finite for w in networks]


def select_seeds(w: TrainedWeights, mask) -> TrainedWeights:
    """The networks of ``w`` whose entry of the (S,) boolean ``mask`` is set, every per-seed array cut alike."""
    mask = np.asarray(mask, bool)
    per_seed = lambda a: None if a is None else np.asarray(a)[mask]
    return TrainedWeights(
        A=w.A[mask], b=w.b[mask], delta=w.delta[mask], seeds=w.seeds[mask], status=w.status[mask],
        experiment=w.experiment, depth=w.depth, delta_type=w.delta_type, activation=w.activation,
        dataset=w.dataset, losses={k: per_seed(v) for k, v in w.losses.items()}, epochs=per_seed(w.epochs),
        stop_reason=per_seed(w.stop_reason),
    )


def entry_labels(shape: tuple[int, ...], flat: np.ndarray) -> list[str]:
    return [str(tuple(int(i) for i in np.unravel_index(f, shape))) for f in flat]


def top_entries(X: np.ndarray, n: int) -> np.ndarray:
    """Flat indices of the ``n`` entries of X (L, ...) that vary most along depth (std over k)."""
    spread = X.reshape(X.shape[0], -1).std(axis=0)
    return np.argsort(-spread, kind="stable")[:n]


def paths_table(
    networks: list[TrainedWeights],
    betas: dict[str, float],
    n_entries: int = 3,
    n_depths: int = 4,
    include_status=INCLUDE_STATUS,
) -> pd.DataFrame:
    """Tidy table for the weight-path figure of one experiment.

    Rows of three series: ``entry`` — L^β X_k for the entries of the primary quantity X that
    vary most, deepest network; ``norm`` — L^β ‖M_k‖, deepest network; ``path`` — the entries
    of W^A_L(k/L) = Σ_{j<k} M_j, unscaled, for the ``n_depths`` deepest depths (first included
    seed each). ``beta`` is the exponent each series is rescaled by.
    """
    networks = sorted(networks, key=lambda w: w.depth)
    usable = [(w, mask) for w, mask in zip(networks, selection(networks, include_status)) if mask.any()]
    if not usable:
        raise ValueError("no network with finite weights to draw weight paths from")
    deepest, mask = usable[-1]
    X_name = primary_quantity(deepest.delta_type)
    seqs = quantity_sequences(deepest)
    seed = int(np.flatnonzero(mask)[0])
    L = deepest.depth
    X = seqs[X_name][seed]
    flat = top_entries(L ** betas[X_name] * X, n_entries)
    labels = entry_labels(X.shape[1:], flat)
    base = {"experiment": deepest.experiment}
    frames = [
        pd.DataFrame({**base, "series": "entry", "quantity": X_name, "beta": betas[X_name], "depth": L,
                      "seed": deepest.seeds[seed], "entry": np.tile(labels, L), "k": np.repeat(np.arange(L), len(flat)),
                      "value": (L ** betas[X_name] * X.reshape(L, -1)[:, flat]).ravel()}),
        pd.DataFrame({**base, "series": "norm", "quantity": "M", "beta": betas["M"], "depth": L,
                      "seed": deepest.seeds[seed], "entry": "norm", "k": np.arange(L),
                      "value": L ** betas["M"] * layer_norms(seqs["M"][seed : seed + 1])[0]}),
    ]
    flat_m = top_entries(seqs["M"][seed], n_entries)
    labels_m = entry_labels(seqs["M"].shape[2:], flat_m)
    for w, mask in usable[-n_depths:]:
        s = int(np.flatnonzero(mask)[0])
        W = weight_path(quantity_sequences(w)["M"][s : s + 1])[0]
        frames.append(pd.DataFrame({
            **base, "series": "path", "quantity": "W_A", "beta": 0.0, "depth": w.depth, "seed": w.seeds[s],
            "entry": np.tile(labels_m, w.depth + 1), "k": np.repeat(np.arange(w.depth + 1), len(flat_m)),
            "value": W.reshape(w.depth + 1, -1)[:, flat_m].ravel(),
        }))
    table = pd.concat(frames, ignore_index=True)
    table.insert(table.columns.get_loc("k") + 1, "t", table["k"] / table["depth"])
    return table
