"""The networks the weight-path figure draws (:func:`.weights.paths_table`), read one training
output at a time and cut to the seeds it can draw: the four deepest depths of the paper's grid
take GBs of float64 whole, and the figure draws one seed of each."""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from .weights import INCLUDE_STATUS, TrainedWeights, included, load_training, select_seeds


def drawn_networks(train_paths: Iterable[str | os.PathLike], include_status=INCLUDE_STATUS) -> list[TrainedWeights]:
    """Of each training output, the first seed with finite weights and an accepted status and
    the first with finite weights (the one drawn where no network of the experiment has an
    accepted status, :func:`.weights.selection`), in their order: :func:`.weights.paths_table`
    gives the same table from these as from the whole outputs."""
    networks = []
    for path in train_paths:
        w = load_training(path)
        keep = np.zeros(len(w.seeds), bool)
        keep[np.flatnonzero(included(w, include_status))[:1]] = True
        keep[np.flatnonzero(w.finite)[:1]] = True
        keep[0] |= not keep.any()  # no finite network: one seed stands for the output
        networks.append(select_seeds(w, keep))
        del w
    return networks
