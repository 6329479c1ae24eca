"""The training-side phase diagram: its cells, its checks, the regime rule it shares with the
scaling stage, the anchor's slopes, and the opt-in target end to end."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from resnet_scaling.config import ConfigError, with_schema_defaults
from resnet_scaling.scaling.exponents import FitSettings, RegimeThresholds, fit_experiment
from resnet_scaling.io import write_npz
from resnet_scaling.regimes.phase_diagram import (
    anchor_experiments,
    anchor_slopes,
    anchor_statistics,
    cells,
    check_spec,
    classify_cell,
)
from resnet_scaling.training.resnet import ResNetEnsemble
from resnet_scaling.scaling.statistics import experiment_statistics
from resnet_scaling.scaling.weights import TrainedWeights
from workflow_utils import ROOT, copy_workflow, run_snakemake


def _spec() -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return with_schema_defaults(config)["regimes"]


def test_default_grid_crosses_every_axis_for_tanh_and_relu():
    spec = _spec()
    grid = cells(spec)
    assert len(grid) == 2 * 3 * 3 * 2
    cell = grid["relu-brownian-inv_sqrt_L-sgd_lr_L"]
    exp = cell["experiment"]
    assert (exp["activation"], exp["init_depth_profile"], exp["delta"], exp["alpha"]) == ("relu", "brownian", "fixed", 0.5)
    assert (exp["optimizer"], exp["lr_depth_exponent"], exp["depths"]) == ("sgd", 1.0, spec["depths"])
    assert cell["residual_scale_label"] == "δ = L^-1/2"
    anchors = anchor_experiments(spec)
    assert set(anchors) == {"anchor-smooth", "anchor-iid"}
    smooth = anchors["anchor-smooth"]
    assert (smooth["block"], smooth["hidden_width"], smooth["delta"], smooth["alpha"]) == ("two-matrix", 32, "fixed", 1.0)
    assert smooth["optimizer"] == "sgd" and smooth["lr_depth_exponent"] == 1.0


def test_a_bad_setting_of_an_axis_names_the_cell_and_the_key():
    spec = _spec()
    spec["optimizers"][1]["set"]["lr"] = -1.0
    with pytest.raises(ConfigError, match=r"regimes cell tanh-iid-trained-sgd_lr_L: lr: -1.0 must be > 0"):
        cells(spec)


def test_check_spec_refuses_repeated_names_and_too_few_fitted_depths():
    spec = _spec()
    repeated = copy.deepcopy(spec)
    repeated["initialisations"].append(repeated["initialisations"][0])
    with pytest.raises(ConfigError, match="regimes.initialisations"):
        check_spec(repeated, FitSettings())
    shallow = copy.deepcopy(spec)
    shallow["depths"] = [4, 8, 16, 32]
    with pytest.raises(ConfigError, match=r"regimes.depths: 2 of the depths"):
        check_spec(shallow, FitSettings(min_depth=16))
    check_spec(spec, FitSettings())


def _weights(profile: str, alpha: float, depth: int, seeds: int = 4) -> TrainedWeights:
    """Networks at initialisation, used as trained ones: A of one size, δ = L^-alpha."""
    net = ResNetEnsemble.initialise(depth, 4, range(seeds), delta_type="fixed", init="xavier", alpha=alpha,
                                    key="pd", dtype=torch.float64, depth_profile=profile)
    w = net.to_numpy()
    return TrainedWeights(A=w["A"], b=w["b"], delta=w["delta"], seeds=np.arange(seeds),
                          status=np.full(seeds, "converged"), experiment=f"{profile}-{alpha}", depth=depth,
                          delta_type="fixed", activation="tanh", losses={"train_loss": np.ones(seeds)})


@pytest.mark.parametrize("profile,alpha,regime", [("smooth", 1.0, "ODE"), ("iid", 0.5, "SDE"),
                                                  ("iid", 1.0, "ODE (rough weights)")])
def test_classify_cell_is_the_scaling_stage_rule(profile, alpha, regime):
    networks = [_weights(profile, alpha, L) for L in (16, 32, 64, 128, 256)]
    labels = {"cell": "c", "activation": "tanh", "initialisation": profile, "residual_scale": str(alpha),
              "optimizer": "none", "initialisation_label": profile, "residual_scale_label": str(alpha),
              "optimizer_label": "none"}
    settings, thresholds = FitSettings(resamples=200), RegimeThresholds()
    exponents, record = classify_cell(networks, labels, settings, thresholds)
    assert record["regime"] == regime
    _, direct = fit_experiment(experiment_statistics(networks)[0], settings, thresholds)
    for key in ("regime", "exponent", "exponent_ci_low", "increment_ratio_slope", "quadratic_variation_slope"):
        assert record[key] == direct[key], key
    assert set(exponents["cell"]) == {"c"} and {"M", "A", "b"} <= set(exponents["quantity"])


def _anchor_file(path, profile: str, depth: int) -> None:
    net = ResNetEnsemble.initialise(depth, 4, range(3), delta_type="fixed", init="xavier", key="anchor",
                                    dtype=torch.float64, depth_profile=profile, block="two-matrix", hidden_width=6)
    w = net.to_numpy()
    write_npz(path, metadata={"depth": depth, "config": {"init_depth_profile": profile}},
              A=w["A"], V=w["V"], A_init=w["A"], V_init=w["V"], seeds=np.arange(3),
              status=np.array(["max_epochs"] * 3))


def test_anchor_slopes_recover_the_increments_of_known_paths(tmp_path):
    files = {}
    for profile in ("smooth", "iid"):
        files[f"anchor-{profile}"] = []
        for depth in (16, 32, 64, 128, 256):
            path = tmp_path / f"{profile}_{depth}.npz"
            _anchor_file(path, profile, depth)
            files[f"anchor-{profile}"].append(path)
    table = anchor_statistics(files)
    assert set(table["weights"]) == {"V", "W", "Z"} and set(table["stage"]) == {"trained", "initial", "update"}
    update = table[(table["stage"] == "update") & (table["statistic"] != "increment_ratio")]
    assert (update["value"] == 0).all()  # these files were never trained
    slopes = anchor_slopes(table, FitSettings(resamples=200, include_status=("max_epochs",)))
    pick = lambda exp: slopes[(slopes["experiment"] == exp) & (slopes["weights"] == "Z")
                              & (slopes["statistic"] == "max_increment") & (slopes["stage"] == "trained")].iloc[0]
    smooth, iid = pick("anchor-smooth"), pick("anchor-iid")
    assert smooth["slope"] == pytest.approx(-1.0, abs=0.08)  # increments π/L × O(1)
    assert smooth["slope_ci_low"] < -1.0 < smooth["slope_ci_high"] or abs(smooth["slope"] + 1) < 0.03
    assert abs(iid["slope"]) < 0.12  # i.i.d. layers: increments of order one (a small max bias)
    fitted = slopes[slopes["stage"] != "update"]  # a zero update has no log-log slope
    assert (fitted["n_depths"] == 5).all() and (fitted["n_excluded"] == 0).all()
    assert slopes.loc[slopes["stage"] == "update", "slope"].isna().all()


TINY = {
    "dataset": {"kind": "synthetic", "n_train": 32, "n_test": 16, "dim": 4},
    "depths": [4, 8, 16],
    "seeds": 2,
    "activations": ["tanh"],
    "base": {"init": "xavier", "init_sd": 1.0, "batch_size": 16, "max_epochs": 2},
    "initialisations": [{"name": "iid", "set": {"init_depth_profile": "iid"}},
                        {"name": "smooth", "set": {"init_depth_profile": "smooth"}}],
    "residual_scales": [{"name": "inv_L", "label": "δ = 1/L", "set": {"delta": "fixed", "alpha": 1.0}}],
    "optimizers": [{"name": "sgd_lr_L", "label": "SGD, lr ∝ L",
                    "set": {"optimizer": "sgd", "lr": 0.5, "lr_depth_exponent": 1.0}}],
    "anchor": {"dataset": {"kind": "synthetic", "n_train": 16, "n_test": 8, "dim": 4}, "depths": [4, 8, 16],
               "seeds": 2, "set": {"activation": "tanh", "hidden_width": 6, "delta": "fixed", "init": "xavier",
                                   "init_sd": 1.0, "optimizer": "sgd", "lr": 0.5, "lr_depth_exponent": 1.0,
                                   "batch_size": 16, "max_epochs": 3, "stopping_rule": "epsilon",
                                   "epsilon": 1.0e-8}},
}


@pytest.mark.workflow
def test_phase_diagram_target_end_to_end(tmp_path):
    """The opt-in target on a tiny grid: tables, figures, and nothing left to do afterwards."""
    work = copy_workflow(tmp_path / "work")
    config = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    config["regimes"] = TINY
    (work / "config" / "tiny.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    args = ("--cores", "2", "phase_diagram", "--configfile", "config/tiny.yaml")
    proc = run_snakemake(work, *args)
    assert proc.returncode == 0, proc.stderr[-5000:]
    regimes = pd.read_csv(work / "results" / "regimes" / "phase_diagram.csv")
    assert set(regimes["cell"]) == {"tanh-iid-inv_L-sgd_lr_L", "tanh-smooth-inv_L-sgd_lr_L"}
    assert regimes["regime"].notna().all() and (regimes["n_usable"] == 3 * 2).all()  # depths × seeds
    slopes = pd.read_csv(work / "results" / "regimes" / "anchor_slopes.csv")
    assert set(slopes["experiment"]) == {"anchor-smooth", "anchor-iid"} and np.isfinite(slopes["slope"]).all()
    for name in ("training_phase_diagram", "regimes_anchor"):
        for ext in ("pdf", "png"):
            assert (work / "figures" / f"{name}.{ext}").stat().st_size > 5_000
    assert not list((work / "results" / "checkpoints").rglob("*.pt"))
    again = run_snakemake(work, *args, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
