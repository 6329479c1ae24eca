"""The networks of the weight-path figure (scaling/paths.py): cut to the seeds the figure can
draw, they give the table of the whole training outputs, with or without accepted networks."""

import warnings

import numpy as np
import pandas as pd
import pytest

import scaling_problems as sp
from resnet_scaling.scaling.paths import drawn_networks
from resnet_scaling.scaling.weights import load_training, paths_table

BETAS = {"A": 0.5, "M": 0.5, "b": 0.5, "m": 0.5, "delta": 0.0}


def _outputs(tmp_path, statuses, poison_first=False):
    paths = []
    for L, status in zip((16, 32, 64), statuses):
        paths.append(tmp_path / "exp" / f"depth_{L}.npz")
        paths[-1].parent.mkdir(exist_ok=True)
        sp.write_training_output(paths[-1], "brownian", L, seeds=4, dim=3, status=status)
    if poison_first:  # the first seed of the deepest output has non-finite weights
        from resnet_scaling.io import read_npz, write_npz

        arrays, meta = read_npz(paths[-1])
        arrays["A"] = arrays["A"].copy()
        arrays["A"][0, 3] = np.nan
        write_npz(paths[-1], metadata=meta, **arrays)
    return paths


@pytest.mark.parametrize(
    "statuses, poison_first",
    [
        ([["converged"] * 4, ["diverged", "stopped", "converged", "converged"], ["diverged", "diverged", "converged", "stopped"]], False),
        ([["converged"] * 4, ["converged"] * 4, ["converged"] * 4], True),
        ([["diverged"] * 4] * 3, False),  # nothing accepted: every finite network is drawn
    ],
)
def test_the_cut_networks_give_the_table_of_the_whole_outputs(tmp_path, statuses, poison_first):
    paths = _outputs(tmp_path, statuses, poison_first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = paths_table([load_training(p) for p in paths], BETAS, n_entries=2, n_depths=2)
        cut_networks = drawn_networks(paths)
        cut = paths_table(cut_networks, BETAS, n_entries=2, n_depths=2)
    pd.testing.assert_frame_equal(cut, whole)
    assert all(len(w.seeds) <= 2 for w in cut_networks)  # at most two seeds of each output are kept
