"""The training-side phase diagram: its cells, its checks, the regime rule it shares with the
scaling stage, the anchor's slopes, and the opt-in target end to end."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from resnet_scaling.config import ConfigError, with_schema_defaults
from resnet_scaling.scaling.exponents import FitSettings, fit_experiment
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.io import write_npz
from resnet_scaling.phase_diagram.study import (
    anchor_dataset,
    anchor_experiments,
    anchor_slopes,
    anchor_statistics,
    cells,
    check_spec,
    classify_cell,
    update_weights,
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
    assert set(anchors) == {"anchor-paper-tied", "anchor-tanh_lr_half_L-smooth", "anchor-tanh_lr_half_L-iid"}
    smooth = anchors["anchor-tanh_lr_half_L-smooth"]
    assert (smooth["block"], smooth["hidden_width"], smooth["delta"], smooth["alpha"]) == ("two-matrix", 32, "fixed", 1.0)
    assert smooth["optimizer"] == "sgd" and smooth["lr_depth_exponent"] == 1.0
    # the paper's setting (Marion et al. 2024, appendix): GELU, V₀ = 0, one standard Gaussian W₀
    # for every layer, no bias, full-batch GD with lr = L × 10⁻² for 500 steps, n = 100, d = 16, m = 32
    paper = anchors["anchor-paper-tied"]
    assert (paper["activation"], paper["v_init"], paper["init"], paper["init_sd"], paper["init_depth_profile"],
            paper["bias"]) == ("gelu", "zero", "gaussian", 1.0, "tied", False)
    assert (paper["optimizer"], paper["lr"], paper["lr_depth_exponent"], paper["max_epochs"]) == ("sgd", 0.01, 1.0, 500)
    data = anchor_dataset(spec, "anchor-paper-tied")
    assert (data["kind"], data["n_train"], data["dim"], paper["batch_size"], paper["hidden_width"]) == ("gaussian", 100, 16, 100, 32)
    assert paper["depths"][0] == 16 and paper["depths"][-1] == 1024 and paper["seeds"] >= 3


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


def test_refined_cells_get_their_own_depths_and_unknown_ones_are_refused():
    spec = _spec()
    spec["refine"] = {"tanh-smooth-trained-adam": {"depths": [16, 32, 64, 128, 256, 512, 1024], "seeds": 5}}
    check_spec(spec, FitSettings())
    exp = cells(spec)["tanh-smooth-trained-adam"]["experiment"]
    assert (len(exp["depths"]), exp["seeds"]) == (7, 5)
    assert cells(spec)["tanh-iid-trained-adam"]["experiment"]["depths"] == spec["depths"]
    spec["refine"] = {"tanh-smoth-trained-adam": {"seeds": 5}}
    with pytest.raises(ConfigError, match="regimes.refine: 'tanh-smoth-trained-adam' is not a cell of the grid; "
                                          "did you mean 'tanh-smooth-trained-adam'"):
        check_spec(spec, FitSettings())


@pytest.mark.parametrize("where", ["base", "anchor"])
def test_an_activation_the_engine_lacks_or_a_zero_V_without_V_is_refused(where):
    """Refused while the cells are built (before any job runs), naming the key and the choices."""
    spec = _spec()
    if where == "base":
        spec["base"]["v_init"] = "zero"  # one-matrix cells have no V
        with pytest.raises(ConfigError, match=r"regimes cell tanh-iid-trained-adam.v_init: 'zero' does not fit "
                                              r"the one-matrix block; choose one of law"):
            check_spec(spec, FitSettings())
    else:
        spec["anchor"]["settings"][0]["set"]["activation"] = "swish"
        with pytest.raises(ConfigError, match=r"regimes.anchor.settings\[0\] \(paper, tied\): "
                                              r"activation: 'swish' is not allowed; choose one of tanh, relu, "
                                              r"identity, softplus0, gelu"):
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


def test_the_update_is_fitted_beside_the_trained_weights():
    """Trained = a rough i.i.d. initialisation (δ = L^-1/2, SDE shape) + a smooth update of size 1/L:
    the trained weights are SDE, what training added is smooth (exponent 1, increment ratio −1)."""
    trained, updates = [], []
    for L in (16, 32, 64, 128, 256):
        initial = _weights("iid", 0.5, L)
        k = np.arange(L) / L
        smooth = np.cos(np.pi * k)[None, :, None, None] * np.ones((4, L, 4, 4)) / L
        w = TrainedWeights(**{**initial.__dict__, "A": initial.A + smooth / initial.delta[..., None, None]})
        trained.append(w)
        updates.append(update_weights(w, initial))
        np.testing.assert_allclose(updates[-1].A, smooth, atol=1e-12)
    labels = {"cell": "c", "activation": "tanh", "initialisation": "iid", "residual_scale": "0.5", "optimizer": "none",
              "initialisation_label": "iid", "residual_scale_label": "0.5", "optimizer_label": "none"}
    exponents, record = classify_cell(trained, labels, FitSettings(resamples=200), RegimeThresholds(), updates=updates)
    assert record["regime"] == "SDE" and record["update_regime"] == "ODE"
    assert record["update_exponent"] == pytest.approx(1.0, abs=0.02)
    assert record["update_increment_ratio_slope"] == pytest.approx(-1.0, abs=0.05)
    assert set(exponents["weights"]) == {"trained", "update"} and record["depths"] == "16 32 64 128 256"


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
    table = anchor_statistics(files, {name: {"setting": "s", "setting_label": "S", "init_depth_profile": name[7:]}
                                      for name in files})
    assert set(table["weights"]) == {"V", "W", "Z"} and set(table["stage"]) == {"trained", "initial", "update"}
    assert set(table["setting"]) == {"s"}
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
    assert (slopes.loc[slopes["stage"] == "update", "note"] == "zero for every network: no slope").all()


def test_anchor_of_the_paper_setting_trains_only_V_and_W(tmp_path):
    """V₀ = 0 and a tied W₀: every increment is training's, so trained and update increments
    coincide; b stays zero."""
    from resnet_scaling.training.data import make_dataset
    from resnet_scaling.training.train import save_result, train_ensemble

    spec = _spec()
    exp = {**anchor_experiments(spec)["anchor-paper-tied"], "max_epochs": 3, "seeds": 2}
    data = make_dataset({**anchor_dataset(spec, "anchor-paper-tied"), "n_train": 20, "n_test": 5}, 0)
    exp["batch_size"] = 20
    paths = []
    for depth in (4, 8, 16):
        result = train_ensemble("anchor-paper-tied", exp, depth, data, dtype="float64", progress=False)
        assert np.all(result.weights["b"] == 0) and np.all(result.initial_weights["V"] == 0)
        assert np.abs(result.weights["V"]).max() > 0  # trained
        paths.append(tmp_path / f"depth_{depth}.npz")
        save_result(paths[-1], result)
    table = anchor_statistics({"anchor-paper-tied": paths})
    inc = table[table["statistic"] == "max_increment"].pivot_table(index=["depth", "seed", "weights"], columns="stage",
                                                                 values="value")
    assert (inc["initial"] == 0).all()
    np.testing.assert_allclose(inc["trained"], inc["update"], rtol=1e-6)


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
    "anchor": {"settings": [
        {"name": "paper", "label": "GELU, V₀ = 0, tied W₀", "dataset": {"kind": "gaussian", "n_train": 10, "n_test": 5,
                                                                       "dim": 4},
         "depths": [4, 8, 16], "seeds": 2, "init_depth_profiles": ["tied"],
         "set": {"activation": "gelu", "hidden_width": 6, "delta": "fixed", "init": "gaussian", "v_init": "zero",
                 "bias": False, "optimizer": "sgd", "lr": 0.01, "lr_depth_exponent": 1.0, "batch_size": 10,
                 "max_epochs": 3, "stopping_rule": "epsilon", "epsilon": 1.0e-12}},
        {"name": "variation", "dataset": {"kind": "synthetic", "n_train": 16, "n_test": 8, "dim": 4},
         "depths": [4, 8, 16], "seeds": 2, "init_depth_profiles": ["smooth", "iid"],
         "set": {"activation": "tanh", "hidden_width": 6, "delta": "fixed", "init": "xavier", "init_sd": 1.0,
                 "optimizer": "sgd", "lr": 0.5, "lr_depth_exponent": 1.0, "batch_size": 16, "max_epochs": 3,
                 "stopping_rule": "epsilon", "epsilon": 1.0e-8}}]},
}


@pytest.mark.workflow
@pytest.mark.slow
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
    assert {"update_exponent", "update_increment_ratio_slope", "depths"} <= set(regimes.columns)
    slopes = pd.read_csv(work / "results" / "regimes" / "anchor_slopes.csv")
    assert set(slopes["experiment"]) == {"anchor-paper-tied", "anchor-variation-smooth", "anchor-variation-iid"}
    # V₀ = 0 and a tied W₀: their initial increments (and the initial norm of V) are zero, without a slope
    zero = slopes["note"].fillna("") != ""
    assert np.isfinite(slopes.loc[~zero, "slope"]).all() and slopes.loc[zero, "slope"].isna().all()
    assert set(slopes.loc[zero, "experiment"]) == {"anchor-paper-tied"}
    for name in ("training_phase_diagram", "regimes_anchor"):
        for ext in ("pdf", "png"):
            assert (work / "figures" / f"{name}.{ext}").stat().st_size > 5_000
    assert not list((work / "results" / "checkpoints").rglob("*.pt"))
    again = run_snakemake(work, *args, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
