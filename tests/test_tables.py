"""Readers check what they read: a truncated or corrupt result file gets one sentence naming
it and the file to delete, and nothing is computed from it."""

import numpy as np
import pandas as pd
import pytest

from resnet_scaling.scaling.exponents import FitSettings, fit_all
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.io import read_npz, write_npz
from resnet_scaling.scaling.statistics import experiment_statistics
from resnet_scaling.scaling.tables import (
    CorruptInputError,
    expected_pairs,
    read_exponents,
    read_regimes,
    read_statistics,
)
from resnet_scaling.scaling.weights import TrainedWeights


def _network(depth, seeds=2, delta_type="shared", status="converged"):
    rng = np.random.default_rng(depth)
    return TrainedWeights(
        A=rng.normal(size=(seeds, depth, 3, 3)) / depth, b=rng.normal(size=(seeds, depth, 3)) / depth,
        delta=np.full((seeds, depth), 1.0 / depth), seeds=np.arange(seeds), status=np.full(seeds, status),
        experiment="e", depth=depth, delta_type=delta_type, activation="tanh",
    )


@pytest.fixture()
def results(tmp_path):
    stats, _ = experiment_statistics([_network(L) for L in (4, 8, 16, 32)], labels={"delta": "shared"})
    stats_path = tmp_path / "statistics.csv"
    stats.to_csv(stats_path, index=False)
    exponents, regimes = fit_all([stats], FitSettings(min_depth=4, resamples=50), RegimeThresholds())
    exp_path, reg_path = tmp_path / "exponents.csv", tmp_path / "regimes.csv"
    exponents.to_csv(exp_path, index=False)
    regimes.to_csv(reg_path, index=False)
    return stats_path, exp_path, reg_path


def _truncate_lines(path, keep):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:keep]))


def test_intact_tables_are_read(results):
    stats_path, exp_path, reg_path = results
    assert len(read_statistics(stats_path)) == 4 * 2 * len(expected_pairs("shared"))
    assert set(read_exponents(exp_path, ["e"])["experiment"]) == {"e"}
    assert read_regimes(reg_path, ["e"])["n_usable"].iloc[0] == 8


@pytest.mark.parametrize("keep", [1, 5, 20])
def test_truncated_exponents_are_refused_naming_the_file(results, keep):
    _, exp_path, _ = results
    _truncate_lines(exp_path, keep)
    with pytest.raises(CorruptInputError) as info:
        read_exponents(exp_path, ["e"])
    message = str(info.value)
    assert message.startswith(f"{exp_path}: ") and f"delete {exp_path}" in message
    assert "\n" not in message


def test_a_line_cut_in_the_middle_is_refused(results):
    _, exp_path, _ = results
    text = exp_path.read_text()
    exp_path.write_text(text[: len(text) // 2])
    with pytest.raises(CorruptInputError, match="exponents.csv"):
        read_exponents(exp_path, ["e"])


def test_a_missing_experiment_is_refused(results):
    _, exp_path, reg_path = results
    with pytest.raises(CorruptInputError, match=r"no rows for the experiments \['f'\]"):
        read_exponents(exp_path, ["e", "f"])
    with pytest.raises(CorruptInputError, match=r"no rows for the experiments \['f'\]"):
        read_regimes(reg_path, ["e", "f"])


def test_truncated_statistics_are_refused(results):
    stats_path, _, _ = results
    _truncate_lines(stats_path, 100)
    with pytest.raises(CorruptInputError, match="is incomplete"):
        read_statistics(stats_path)


def test_non_numeric_values_are_refused(results):
    _, _, reg_path = results
    table = pd.read_csv(reg_path)
    table["n_usable"] = table["n_usable"].astype(object)
    table.loc[0, "n_usable"] = "garbage"
    table.to_csv(reg_path, index=False)
    with pytest.raises(CorruptInputError, match="non-finite or non-numeric values in 'n_usable'"):
        read_regimes(reg_path)


def test_empty_and_binary_files_are_refused(tmp_path):
    empty = tmp_path / "exponents.csv"
    empty.write_text("")
    with pytest.raises(CorruptInputError, match="not a readable CSV"):
        read_exponents(empty)
    binary = tmp_path / "regimes.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CorruptInputError, match="regimes.csv"):
        read_regimes(binary)


@pytest.mark.parametrize("corrupt", ["garbage", "truncated"])
def test_corrupt_npz_names_the_file_and_the_fix(tmp_path, corrupt):
    path = tmp_path / "synthetic.npz"
    write_npz(path, metadata={"k": 1}, x=np.arange(10000.0))
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 100 if corrupt == "garbage" else data[: len(data) // 2])
    with pytest.raises(ValueError) as info:
        read_npz(path)
    message = str(info.value)
    assert str(path) in message and f"delete {path}" in message
    assert "pickled" not in message


def test_any_table_cut_in_its_last_line_is_refused(tmp_path):
    from resnet_scaling.scaling.tables import read_table

    path = tmp_path / "generative.csv"
    pd.DataFrame({"depth": [16, 32, 64], "variant": ["limit"] * 3, "error": [0.1, 0.05, 0.025]}).to_csv(path, index=False)
    assert len(read_table(path)) == 3
    text = path.read_text()
    path.write_text(text[: text.rindex(",")])  # the last value is lost
    with pytest.raises(CorruptInputError, match=r"generative.csv: has its last line cut \(no value in \['error'\]\)"):
        read_table(path)
    empty = tmp_path / "pathwise.csv"
    empty.write_text("depth,error\n")
    assert read_table(empty, allow_empty=True).empty
    with pytest.raises(CorruptInputError, match="has no rows"):
        read_table(empty)


def test_corrupt_json_summary_is_refused(tmp_path):
    from resnet_scaling.scaling.tables import read_json

    path = tmp_path / "summary.json"
    path.write_text('{"experiment": "e", "depth": 10')
    with pytest.raises(CorruptInputError, match=r"summary.json: is not valid JSON .*delete .*summary.json"):
        read_json(path)


# -- every table against what the config says it should hold ---------------------------------

NETWORKS = {"experiment": "e", "depths": [4, 8, 16, 32], "seeds": 2}


def test_statistics_cut_at_a_depth_boundary_are_refused_against_the_config(results):
    """A table that lost every row of its deepest depth is still complete network by network:
    only the config's depths x seeds tell that it is not what the fits must see."""
    stats_path, _, _ = results
    table = pd.read_csv(stats_path)
    assert len(read_statistics(stats_path, NETWORKS)) == len(table)
    table[table["depth"] < 32].to_csv(stats_path, index=False)
    assert len(read_statistics(stats_path)) < len(table)  # complete network by network
    with pytest.raises(CorruptInputError) as info:
        read_statistics(stats_path, NETWORKS)
    message = str(info.value)
    assert message.startswith(f"{stats_path}: does not hold the networks the config trains for 'e'")
    assert "first: depth 32, seed 0" in message and f"delete {stats_path} and rerun" in message


def test_statistics_without_a_middle_depth_or_with_another_experiment_are_refused(results):
    stats_path, _, _ = results
    table = pd.read_csv(stats_path)
    table[table["depth"] != 16].to_csv(stats_path, index=False)
    with pytest.raises(CorruptInputError, match="lacks 2 of them .first: depth 16, seed 0."):
        read_statistics(stats_path, NETWORKS)
    table.assign(experiment="f").to_csv(stats_path, index=False)
    with pytest.raises(CorruptInputError, match=r"holds rows of experiment\(s\) \['f'\], where only 'e' belongs"):
        read_statistics(stats_path, NETWORKS)
    table.to_csv(stats_path, index=False)
    with pytest.raises(CorruptInputError, match="holds 2 network.s. it should not .first: depth 32, seed 0"):
        read_statistics(stats_path, {**NETWORKS, "depths": [4, 8, 16]})


def test_training_tables_are_checked_against_the_config(tmp_path):
    from resnet_scaling.scaling.tables import read_training

    path = tmp_path / "training.csv"
    rows = [{"experiment": "e", "depth": d, "seed": s, "status": "converged"} for d in (4, 8, 16, 32) for s in (0, 1)]
    pd.DataFrame(rows).to_csv(path, index=False)
    assert len(read_training(path, NETWORKS)) == 8
    pd.DataFrame(rows[:-2]).to_csv(path, index=False)
    with pytest.raises(CorruptInputError, match=r"training.csv: does not hold the networks .*\(first: depth 32, seed 0"):
        read_training(path, NETWORKS)
    # a table of several experiments (the gallery's) has each (depth, seed) once per experiment
    pd.DataFrame(rows + [{**r, "experiment": "f"} for r in rows]).to_csv(path, index=False)
    assert len(read_training(path)) == 16


def test_exponents_and_regimes_of_an_experiment_the_config_does_not_run_are_refused(results):
    _, exp_path, reg_path = results
    for path, reader in ((exp_path, read_exponents), (reg_path, read_regimes)):
        table = pd.read_csv(path)
        pd.concat([table, table.assign(experiment="x")]).to_csv(path, index=False)
        assert set(reader(path, ["e", "x"])["experiment"]) == {"e", "x"}
        with pytest.raises(CorruptInputError, match=r"rows for the experiments \['x'\], which the config does not run"):
            reader(path, ["e"])
