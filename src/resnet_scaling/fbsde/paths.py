"""Tidy tables of adjoint paths for the figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch


def path_rows(values: torch.Tensor, ts: np.ndarray, n_paths: int, n_inputs: int, **labels) -> pd.DataFrame:
    """Tidy rows (path, input, coord, t, value) of the first paths and inputs of (T, P, N, d) values."""
    v = values[:, :n_paths, :n_inputs].numpy()
    T, P, N, d = v.shape
    idx = np.indices((T, P, N, d)).reshape(4, -1)
    frame = pd.DataFrame(
        {"path": idx[1], "input": idx[2], "coord": idx[3], "t": np.asarray(ts)[idx[0]], "value": v.reshape(-1)}
    )
    for position, (key, value) in enumerate(labels.items()):
        frame.insert(position, key, value)
    return frame


def subsample(n_steps: int, max_points: int) -> int:
    """The largest stride r dividing n_steps with at most max_points + 1 points left."""
    r = max(1, math.ceil(n_steps / max_points))
    while n_steps % r:
        r += 1
    return r
