"""The scaling figures render from the stage's tables (PDF and PNG, one call each)."""

import numpy as np
import pandas as pd
import pytest

import scaling_problems as sp
from resnet_scaling.scaling.exponents import FitSettings, exponents_of, fit_all
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.plots import regimes as regime_figures
from resnet_scaling.plots import scaling as figures
from resnet_scaling.scaling.statistics import experiment_statistics
from resnet_scaling.scaling.decomposition import decompose
from resnet_scaling.scaling.weights import paths_table


@pytest.fixture(scope="module")
def tables():
    depths = (16, 24, 38, 57)
    stats, training, nets = [], [], {}
    for kind, delta in (("smooth", "shared"), ("brownian", "multi")):
        nets[kind] = [sp.network(kind, L, seeds=2, dim=3, status=["converged", "stopped"]) for L in depths]
        for w in nets[kind]:
            w.delta_type = delta
            w.losses = {"train_loss": np.array([2e-3, 5e-4]), "epoch_loss": np.array([1e-3, 4e-4])}
            w.epochs = np.array([5, 7])
        labels = {"dataset": "toy", "dataset_kind": "synthetic", "activation": "relu", "delta": delta,
                  "shuffle": "correct"}
        s, t = experiment_statistics(nets[kind], labels=labels)
        stats.append(s)
        training.append(t)
    exponents, regimes = fit_all(stats, FitSettings(min_depth=16, resamples=50), RegimeThresholds())
    return pd.concat(stats), pd.concat(training), nets, exponents, regimes


def _written(path):
    return all(path.with_suffix(s).stat().st_size > 1000 for s in (".pdf", ".png"))


def test_all_scaling_figures(tables, tmp_path):
    stats, training, nets, exponents, regimes = tables
    figures.max_norm_figure(stats, exponents, tmp_path / "max_norm.png")
    figures.hypothesis_figure(stats, exponents, tmp_path / "hypothesis.png")
    figures.loss_figure(training, {"smooth": 1e-3, "brownian": 1e-3}, tmp_path / "loss.png")
    regime_figures.summary_figure(regimes, RegimeThresholds(), tmp_path / "summary.png")
    betas = exponents_of(exponents, "brownian")
    figures.paths_figure(paths_table(nets["brownian"], betas, n_depths=2), tmp_path / "paths.png")
    rng = np.random.default_rng(0)
    decomposition, losses = decompose(nets["brownian"], betas, (rng.normal(size=(8, 3)), rng.normal(size=(8, 3))),
                                      n_cells=8, show_depths=2)
    figures.decomposition_figure(decomposition, losses, tmp_path / "decomposition.png", epsilon=1e-3)
    for name in ("max_norm", "hypothesis", "loss", "summary", "paths", "decomposition"):
        assert _written(tmp_path / f"{name}.png"), name
