"""Per-block kernels of trained convolutional ResNets in the paper's roles, their norms, and
the statistics of docs/maths.md §3 on them.

Block k of a network holds two 3×3 kernels: conv1 ↦ A_k and conv2 ↦ δ_k (docs/references.md).
Each is measured by its operator (spectral) norm as a convolution on the block's input size,
by the FFT method (:mod:`resnet_scaling.cnn.operator_norms`), and by its Frobenius norm.
Increments K_{k+1} − K_k exist only between kernels of one shape acting on one input size
(consecutive blocks of a stage; for conv1 not into the first block of a stage), and are
measured on that geometry. The statistics come from :func:`resnet_scaling.scaling.statistics.norm_statistics`,
the code path of the fully connected networks; the path statistics (cumulative sums) need
one shape along the whole depth and are not taken.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..io import check_training_name, read_npz
from ..scaling.statistics import NORM_STATISTICS, norm_statistics
from .model import BlockGeometry, block_geometry
from .operator_norms import operator_norm

#: The paper's role of each convolution of a block.
ROLES = {"A": "conv1", "delta": "conv2"}
NORMS = ("operator", "frobenius")


def _conv_geometry(g: BlockGeometry, role: str) -> tuple[int, int]:
    """(input size, stride) of a block's conv1 or conv2."""
    return (g.in_size, g.stride) if role == "A" else (g.size, 1)


def _norm(kernel: np.ndarray, kind: str, size: int, stride: int) -> float:
    if not np.isfinite(kernel).all():
        return np.nan
    if kind == "frobenius":
        return float(np.sqrt(np.sum(np.asarray(kernel, dtype=np.float64) ** 2)))
    return operator_norm(np.asarray(kernel, dtype=np.float64), size, stride)


def layer_table(arrays: dict[str, np.ndarray], meta: dict) -> pd.DataFrame:
    """Tidy per-layer table of one training output: one row per (seed, quantity, norm, block k)
    with the norm of the kernel and of its increment to block k + 1 (NaN where undefined)."""
    depth, width = int(meta["depth"]), int(meta["config"]["width"])
    geometry = block_geometry(depth, width)
    seeds, status = arrays["seeds"], arrays["status"].astype(str)
    rows = []
    for s_idx, seed in enumerate(seeds):
        for quantity, conv in ROLES.items():
            kernels = [arrays[f"param:blocks.{g.k}.{conv}.weight"][s_idx] for g in geometry]
            for kind in NORMS:
                for g, kernel in zip(geometry, kernels):
                    size, stride = _conv_geometry(g, quantity)
                    nxt = geometry[g.k + 1] if g.k + 1 < depth else None
                    same = nxt is not None and kernels[nxt.k].shape == kernel.shape and _conv_geometry(nxt, quantity) == (size, stride)
                    rows.append({
                        "seed": int(seed), "status": status[s_idx], "quantity": quantity, "norm": kind,
                        "k": g.k, "stage": g.stage, "size": size, "stride": stride,
                        "value": _norm(kernel, kind, size, stride), "has_increment": same,
                        "increment": _norm(kernels[nxt.k] - kernel, kind, size, stride) if same else np.nan,
                    })
    table = pd.DataFrame(rows)
    table.insert(0, "depth", depth)
    table.insert(0, "experiment", str(meta["experiment"]))
    table.insert(table.columns.get_loc("k") + 1, "t", table["k"] / depth)
    return table


def extract(train_path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-layer table and the training summary (one row per seed) of a training output."""
    arrays, meta = read_npz(train_path)
    missing = [k for k in ("seeds", "status", "epochs", "param:blocks.0.conv1.weight") if k not in arrays]
    if missing:
        raise ValueError(f"{train_path} is not a convolutional training output (lacks {missing}); "
                         "delete it and rerun the workflow")
    check_training_name(train_path, meta.get("experiment", ""), meta.get("depth", -1))
    layers = layer_table(arrays, meta)
    training = pd.DataFrame({"experiment": meta["experiment"], "depth": int(meta["depth"]),
                             "seed": arrays["seeds"].astype(int), "status": arrays["status"].astype(str),
                             "epochs": arrays["epochs"].astype(int)})
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        history = np.atleast_2d(arrays[name])
        training[name] = [row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.nan for row in history]
    return layers, training


def quantity_name(quantity: str, norm: str) -> str:
    """Operator norms carry the paper's names (A, delta); Frobenius norms a suffix."""
    return quantity if norm == "operator" else f"{quantity}_frobenius"


def statistics_table(layers: pd.DataFrame, labels: dict | None = None) -> pd.DataFrame:
    """The statistics table of :func:`resnet_scaling.scaling.statistics.experiment_statistics` (same
    columns) from the per-layer tables of one experiment's networks."""
    frames = []
    for (depth, quantity, kind), part in layers.groupby(["depth", "quantity", "norm"], sort=True):
        part = part.sort_values(["seed", "k"])
        seeds = part["seed"].unique()
        norms = part["value"].to_numpy().reshape(len(seeds), depth)
        increments = part["increment"].to_numpy().reshape(len(seeds), depth)[:, :-1]
        defined = part["has_increment"].to_numpy(dtype=bool).reshape(len(seeds), depth)[0, :-1]
        finite = np.isfinite(norms).all(axis=1)
        with np.errstate(over="ignore", invalid="ignore"):
            values = norm_statistics(norms, np.nan_to_num(increments, nan=0.0), defined)
        status = part.drop_duplicates("seed")["status"].to_numpy()
        for statistic in NORM_STATISTICS:
            frames.append(pd.DataFrame({
                "depth": depth, "seed": seeds, "status": status, "finite": finite,
                "quantity": quantity_name(quantity, kind), "statistic": statistic, "value": values[statistic],
            }))
    table = pd.concat(frames, ignore_index=True)
    experiment = str(layers["experiment"].iloc[0])
    for position, (key, value) in enumerate({"experiment": experiment, **(labels or {})}.items()):
        table.insert(position, key, value)
    return table.sort_values(["depth", "quantity", "statistic", "seed"], kind="stable", ignore_index=True)
