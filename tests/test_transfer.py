"""The learning-rate transfer study (docs/maths.md §9): η* and its bootstrap on loss curves with a
known optimum, the slope of log η*, diverged runs as gaps, the config refusals, and a tiny run of
the study's core functions end to end."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from resnet_scaling.config import ConfigError
from resnet_scaling.training.data import make_dataset
from resnet_scaling.transfer import cells, check_spec, curve, eta_star, grid_optimum, settings, train_cell
from resnet_scaling.transfer import transfer_fit, transfer_verdict
from resnet_scaling.transfer.analysis import analyse, cost_line, loss_tables
from resnet_scaling.transfer.figures import loss_curves

torch.set_num_threads(1)
GRID = np.arange(-12.0, 0.0)  # log2 learning rates, 12 points


def parabola_losses(x_star: float, n_seeds: int = 3, noise: float = 0.0, rng=None, width: float = 0.3) -> np.ndarray:
    """(learning rates × seeds) losses whose log is a parabola in log2 lr with vertex x_star."""
    rng = rng or np.random.default_rng(0)
    log_loss = -3.0 + width * (GRID - x_star) ** 2
    return np.exp(log_loss[:, None] + noise * rng.standard_normal((len(GRID), n_seeds)))


@pytest.mark.parametrize("x_star", [-7.0, -6.3, -4.55, -2.9])
def test_eta_star_recovers_a_known_optimum_between_grid_points(x_star):
    point, edge = eta_star(parabola_losses(x_star), GRID)
    assert not edge
    assert point == pytest.approx(x_star, abs=1e-9)  # a parabola in log2 lr: the vertex is exact


def test_eta_star_at_the_grid_edge_is_flagged_and_kept_out_of_the_slope():
    point, edge = eta_star(parabola_losses(-14.0), GRID)
    assert edge and point == GRID[0]
    tables = {L: parabola_losses(-6.0 - 0.5 * math.log2(L)) for L in (4, 16, 64)}
    tables[1024] = parabola_losses(-20.0)
    table, record = transfer_fit(tables, GRID, resamples=50)
    assert bool(table.set_index("depth").loc[1024, "at_edge"])
    assert record["n_at_edge"] == 1 and record["n_depths"] == 3 and "1024" in record["note"]
    assert record["slope"] == pytest.approx(-0.5, abs=1e-9)


def test_slope_of_log_eta_star_and_its_seed_bootstrap_interval():
    """η*(L) = 2^-4 · L^-1/2 with seed noise: the slope is near −½ and its interval covers it; each
    η* interval covers its own point; with a flat optimum the verdict is 'transfers'."""
    rng = np.random.default_rng(1)
    depths = (4, 8, 16, 32, 64, 128, 256)
    tables = {L: parabola_losses(-4.0 - 0.5 * math.log2(L), n_seeds=4, noise=0.05, rng=rng) for L in depths}
    table, record = transfer_fit(tables, GRID, resamples=400, seed=3)
    assert record["slope"] == pytest.approx(-0.5, abs=0.1)
    assert record["ci_low"] <= -0.5 <= record["ci_high"]
    assert record["ci_high"] - record["ci_low"] < 0.3
    assert (table["ci_low"] <= table["eta_star"]).all() and (table["eta_star"] <= table["ci_high"]).all()
    assert transfer_verdict(record["slope"], record["ci_low"], record["ci_high"], 0.15) == "does not transfer"
    flat = {L: parabola_losses(-5.0, n_seeds=4, noise=0.05, rng=rng) for L in depths}
    _, flat_record = transfer_fit(flat, GRID, resamples=400, seed=3)
    assert abs(flat_record["slope"]) < 0.05
    assert transfer_verdict(flat_record["slope"], flat_record["ci_low"], flat_record["ci_high"], 0.15) == "transfers"
    assert transfer_verdict(float("nan"), 0.0, 0.0, 0.15) == "undetermined"


def test_a_diverged_rate_is_a_gap_never_a_loss():
    losses = parabola_losses(-5.0)
    losses[7, 1] = np.nan  # one seed diverged at the grid's best rate
    c = curve(losses)
    assert c[7] == np.inf and np.isfinite(np.delete(c, 7)).all()
    assert grid_optimum(losses) != 7
    assert grid_optimum(np.full((4, 2), np.nan)) is None
    point, _ = eta_star(losses, GRID)
    assert point in (GRID[6], GRID[8])  # beside a gap the grid point itself, no parabola across it


def _tiny_spec(**over):
    spec = {"datasets": ["tiny"], "depths": [4, 8, 16], "seeds": 2, "steps": 4, "batch_size": 16, "lr_log2": {"start": -6, "stop": -2},
            "coord_check": {"steps": 2, "n_inputs": 8}, "bootstrap": {"resamples": 30}}
    spec.update(over)
    return settings(spec)


DATASETS = {"tiny": {"kind": "synthetic", "n_train": 32, "n_test": 16, "dim": 4}}


def test_diverged_runs_are_recorded_as_diverged_with_no_loss(tmp_path):
    """Adam moves every entry by about lr a step: at lr 2^14 the weights pass divergence_max_weight."""
    spec = _tiny_spec(depths=[4, 8, 16], lr_log2={"start": -4, "stop": 14, "step": 9}, blocks=["one-matrix"],
                      parametrisations=[{"name": "plain", "set": {"delta": "fixed", "alpha": 1.0}}])
    cell = next(iter(cells(spec, DATASETS).values()))
    data = make_dataset(DATASETS["tiny"], 0)
    runs = pd.DataFrame(train_cell(cell, data, tmp_path / cell.name)["rows"])
    top = runs[runs["lr_log2"] == 14]
    assert top["diverged"].all() and (top["status"] == "diverged").all()
    assert top["train_loss"].isna().all() and top["test_loss"].isna().all() and (top["reason"] != "").all()
    assert runs.loc[runs["lr_log2"] < 14, "train_loss"].notna().all()
    drawn = loss_curves(runs)
    assert drawn.loc[drawn["lr_log2"] == 14, "loss"].isna().all() and drawn.loc[drawn["lr_log2"] == 14, "diverged"].all()
    for table in loss_tables(runs).values():
        assert np.isnan(table[-1]).all()
    saved = pd.read_csv(tmp_path / cell.name / "runs.csv")
    assert saved.loc[saved["lr_log2"] == 14, "train_loss"].isna().all()


@pytest.mark.parametrize("change, key", [
    ({"parametrisations": [{"name": "eps", "set": {"delta": "fixed"}, "adam_eps_depth_exponent": -1.0}]},
     "transfer.parametrisations[0] (eps).adam_eps_depth_exponent"),
    ({"parametrisations": [{"name": "groups", "set": {"delta": "fixed", "bias_lr_depth_exponent": 0.5}}]},
     "transfer.parametrisations[0] (groups).set: unknown key `bias_lr_depth_exponent`"),
    ({"parametrisations": [{"name": "vzero", "set": {"delta": "fixed", "v_init": "zero"}}], "blocks": ["one-matrix"]},
     "transfer.parametrisations[0] (vzero).set.v_init"),
    ({"parametrisations": [{"name": "lr", "set": {"delta": "fixed", "lr": 0.1}}]},
     "transfer.parametrisations[0] (lr).set.lr"),
    ({"parametrisations": [{"name": "delta", "set": {"delta": "learned"}}]},
     "transfer.parametrisations[0] (delta).set.delta"),
    ({"steps": 5}, "transfer.steps"),
    ({"datasets": ["absent"]}, "transfer.datasets[0]"),
    ({"coord_check": {"steps": 40}}, "transfer.coord_check.steps"),
])
def test_a_parametrisation_or_budget_the_trainer_cannot_run_is_refused_naming_the_key(change, key):
    spec = _tiny_spec(**change)
    with pytest.raises(ConfigError) as info:
        check_spec(spec, DATASETS)
    assert str(info.value).startswith(key), str(info.value)


def test_the_study_runs_end_to_end_on_a_tiny_grid(tmp_path):
    spec = _tiny_spec()
    study = cells(spec, DATASETS)
    assert len(study) == 3 * 2  # three parametrisations × two blocks × one dataset
    data = {"tiny": make_dataset(DATASETS["tiny"], 0)}
    folders = {}
    for name, cell in study.items():
        train_cell(cell, data["tiny"], tmp_path / name)
        folders[name] = tmp_path / name
        assert (tmp_path / name / "optimum" / "depth_16.npz").exists()
    tables = analyse(folders, study, data, {"transfer": spec})
    runs, summary = tables["runs"], tables["transfer"]
    assert len(runs) == 6 * 3 * 5 * 2  # cells × depths × learning rates × seeds
    assert set(runs["steps"]) == {4}
    assert len(summary) == 6 and {"slope", "ci_low", "ci_high", "regime", "pathwise"} <= set(summary)
    assert (summary.loc[summary["block"] == "two-matrix", "regime"].str.startswith("not evaluated")).all()
    assert summary.loc[summary["block"] == "one-matrix", "regime"].notna().all()
    assert set(tables["coord_check"]["fraction"]) == {0.25, 0.5, 1.0}
    assert (tables["coord_check"]["rms_change"] > 0).all()
    assert len(tables["optimum"]) == 6 * 3
    assert cost_line(tables["cost"]).startswith("cost: ")
    # the rule of each parametrisation is applied: depth-μP steps are lr · L^-1/2
    mup = runs[runs["parametrisation"] == "depth_mup"]
    assert np.allclose(mup["lr"], mup["lr_base"] * mup["depth"] ** -0.5)
