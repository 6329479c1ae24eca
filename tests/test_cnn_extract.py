"""Kernels of trained convolutional ResNets: their norms on each block's geometry, increments
only within a stage, and the statistics, exponents and regime by the fully connected code path."""

import numpy as np
import pandas as pd
import pytest

from resnet_scaling.cnn.extract import layer_table, statistics_table
from resnet_scaling.cnn.model import block_geometry, build
from resnet_scaling.cnn.operator_norms import operator_norm
from resnet_scaling.cnn.scaling import fit, labels, scorecard_markdown
from resnet_scaling.scaling.statistics import NORM_STATISTICS, norm_statistics, sequence_statistics


def _output(depth, width, seeds=(0, 1), scale=None):
    """A training output of untrained networks (optionally kernels scaled by depth**-scale)."""
    nets = [build(depth, width, seed=s) for s in seeds]
    params = {}
    for name, _ in nets[0].named_parameters():
        stacked = np.stack([dict(n.named_parameters())[name].detach().numpy() for n in nets])
        params[f"param:{name}"] = stacked * (depth ** -scale[0] if scale and "conv1" in name else
                                             depth ** -scale[1] if scale and "conv2" in name else 1.0)
    arrays = {"seeds": np.array(seeds), "status": np.array(["max_epochs"] * len(seeds)), **params}
    meta = {"experiment": "e", "depth": depth, "config": {"width": width}}
    return arrays, meta


def test_norms_are_taken_on_each_blocks_geometry():
    arrays, meta = _output(11, 2)
    table = layer_table(arrays, meta)
    assert len(table) == 2 * 2 * 2 * 11
    geo = block_geometry(11, 2)
    for g in (geo[0], geo[2], geo[5], geo[10]):
        k1 = arrays[f"param:blocks.{g.k}.conv1.weight"][1]
        k2 = arrays[f"param:blocks.{g.k}.conv2.weight"][1]
        row = lambda q, n: table[(table["seed"] == 1) & (table["quantity"] == q) & (table["norm"] == n) & (table["k"] == g.k)].iloc[0]
        assert row("A", "operator")["value"] == pytest.approx(operator_norm(k1, g.in_size, g.stride), rel=1e-12)
        assert row("delta", "operator")["value"] == pytest.approx(operator_norm(k2, g.size, 1), rel=1e-12)
        assert row("delta", "frobenius")["value"] == pytest.approx(np.linalg.norm(k2.astype(float)), rel=1e-6)
    # conv2 increments exist within a stage; conv1 also not into a stage's first (strided) block
    ops = table[(table["seed"] == 0) & (table["norm"] == "operator")]
    has = {q: ops[ops["quantity"] == q].sort_values("k")["has_increment"].tolist() for q in ("A", "delta")}
    stage = [g.stage for g in geo]
    assert has["delta"] == [stage[k] == stage[k + 1] for k in range(10)] + [False]
    shape = lambda g: (g.in_channels, g.in_size, g.stride)
    assert has["A"] == [shape(geo[k]) == shape(geo[k + 1]) for k in range(10)] + [False]
    assert has["A"][:3] == [True, False, False]  # stage 0 keeps its shape; stage 1 starts strided
    k2, k3 = (arrays[f"param:blocks.{k}.conv2.weight"][0] for k in (3, 4))
    inc = ops[(ops["quantity"] == "delta") & (ops["k"] == 3)]["increment"].iloc[0]
    assert inc == pytest.approx(operator_norm(k3 - k2, geo[3].size, 1), rel=1e-12)


def test_statistics_are_the_fully_connected_ones_on_the_defined_increments():
    arrays, meta = _output(12, 2)
    layers = layer_table(arrays, meta)
    stats = statistics_table(layers, labels("c"))
    assert set(stats["statistic"]) == set(NORM_STATISTICS)
    assert len(stats) == 2 * 4 * len(NORM_STATISTICS)  # seeds × (A, δ) × (operator, Frobenius) × statistics
    part = layers[(layers["quantity"] == "delta") & (layers["norm"] == "frobenius")].sort_values(["seed", "k"])
    norms = part["value"].to_numpy().reshape(2, 12)
    inc = part["increment"].to_numpy().reshape(2, 12)[:, :-1]
    defined = part["has_increment"].to_numpy().reshape(2, 12)[0, :-1]
    expected = norm_statistics(norms, np.nan_to_num(inc), defined)
    got = stats[stats["quantity"] == "delta_frobenius"]
    for name, value in expected.items():
        np.testing.assert_allclose(got[got["statistic"] == name].sort_values("seed")["value"], value, rtol=1e-12)
    # with every increment defined, norm_statistics is what the fully connected networks get
    X = np.random.default_rng(0).normal(size=(3, 7, 2, 2))
    full = sequence_statistics(X, statistics=NORM_STATISTICS)
    from resnet_scaling.scaling.weights import increment_norms, layer_norms

    again = norm_statistics(layer_norms(X), increment_norms(X), np.ones(6, dtype=bool))
    assert all(np.array_equal(full[k], again[k]) for k in full)


def test_exponents_recover_a_known_depth_scaling_and_the_scorecard_reads_the_figures():
    depths, tables = (8, 12, 16, 20), []
    for L in depths:
        arrays, meta = _output(L, 1, seeds=(0, 1, 2), scale=(0.0, 0.5))
        tables.append(layer_table(arrays, meta))
    stats = statistics_table(pd.concat(tables, ignore_index=True), labels("c"))
    scaling = {"bootstrap": {"resamples": 200}}
    exponents, regime = fit(stats, scaling, fit_min_depth=8, regime_quantity="delta")
    get = lambda q, s: exponents[(exponents["quantity"] == q) & (exponents["statistic"] == s)].iloc[0]
    # conv2 kernels scaled by L^-1/2 on top of i.i.d. initial kernels: the max norm falls like L^-1/2
    assert get("delta", "rms_norm")["exponent"] == pytest.approx(0.5, abs=0.1)
    assert get("A", "rms_norm")["exponent"] == pytest.approx(0.0, abs=0.1)
    assert get("A", "max_norm")["n_depths"] == 4 and get("A", "max_norm")["n_seeds"] == 3
    assert regime["quantity"] == "delta" and regime["n_usable"] == 12
    regimes = pd.DataFrame([regime])
    card = scorecard_markdown(exponents, regimes)
    assert "CIFAR-10 ResNet, β of conv1 kernels (max operator norm)" in card
    assert card.count("figure-reading") == 7 and "figs/cifar-A-scaling-max_norm.png" in card
