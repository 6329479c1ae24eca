"""The trainer: per-seed independence, stopping, divergence, the shuffle
defect ablation, and bitwise-identical resumption in process (after a real kill: test_checkpoint.py)."""

import math

import numpy as np
import pytest
import torch

from resnet_scaling.training.data import make_synthetic
from resnet_scaling.io import read_npz
from resnet_scaling.training.train import (
    defective_shuffle_,
    epoch_permutations,
    save_result,
    train_ensemble,
)

DATA = make_synthetic(96, 32, dim=4, seed=0)
BASE = dict(dataset="synthetic", activation="tanh", delta="multi", init="xavier", init_sd=0.5,
            lr=0.01, batch_size=16, max_epochs=4, epsilon=1e-9, patience=100, seeds=3)


def _train(depth=6, **overrides):
    return train_ensemble("exp", {**BASE, **overrides}, depth, DATA, dtype="float64", device="cpu", progress=False)


def test_training_reduces_the_loss():
    result = _train(max_epochs=6)
    loss = result.histories["train_loss"]
    assert np.all(loss[:, -1] < loss[:, 0])
    assert list(result.status) == ["max_epochs"] * 3 and np.all(result.epochs == 6)


def test_seeds_trained_together_equal_seeds_trained_alone():
    together = _train(seeds=3)
    for s in range(3):
        alone = train_ensemble("exp", {**BASE, "seeds": s + 1}, 6, DATA, dtype="float64", progress=False)
        for key in ("A", "b", "delta"):
            np.testing.assert_allclose(alone.weights[key][s], together.weights[key][s], rtol=1e-12, atol=1e-15)


def test_same_config_gives_the_same_numbers():
    a, b = _train(), _train()
    for key in ("A", "b", "delta"):
        assert np.array_equal(a.weights[key], b.weights[key])


def test_stopping_rule_converged_and_patience():
    converged = _train(epsilon=10.0)
    assert list(converged.status) == ["converged"] * 3 and np.all(converged.epochs == 1)
    stalled = _train(lr=1e-12, patience=2, max_epochs=10)
    assert list(stalled.status) == ["stopped"] * 3
    assert np.all(stalled.epochs == 3)  # epoch 1 sets the best loss, then 2 epochs without 1 % gain
    assert np.isnan(stalled.histories["train_loss"]).sum() == 0  # all stopped together, nothing padded


def test_epsilon_only_rule_never_stops_on_a_plateau():
    stalled = _train(lr=1e-12, patience=2, max_epochs=6, stopping_rule="epsilon")
    assert list(stalled.status) == ["max_epochs"] * 3 and np.all(stalled.epochs == 6)
    converged = _train(epsilon=10.0, stopping_rule="epsilon")
    assert list(converged.status) == ["converged"] * 3 and np.all(converged.epochs == 1)


def test_divergence_freezes_a_seed_and_the_job_completes():
    result = _train(delta="none", init="xavier", init_sd=3.0, optimizer="sgd", lr=1e8, max_epochs=3, activation="identity")
    assert set(result.status) == {"diverged"}
    for key in ("A", "b"):
        assert np.all(np.isfinite(result.weights[key]))


def test_finite_but_exploding_loss_counts_as_diverged_with_its_reason():
    # ReLU with per-layer δ at lr 1: the loss stays finite but ends 1e4..1e8 above its start.
    result = _train(activation="relu", delta="multi", init="xavier-depth", init_sd=0.01, lr=1.0, max_epochs=4)
    assert list(result.status) == ["diverged"] * 3
    start = np.asarray(result.metadata["initial_loss"])
    for s, reason in enumerate(result.stop_reason):
        loss = result.histories["train_loss"][s, result.epochs[s] - 1]  # the epoch it diverged in
        assert reason.startswith(("training loss", "weight entry", "non-finite")), reason
        assert not np.isfinite(loss) or loss > 10 * start[s] or reason.startswith("weight entry")
        assert np.all(np.isnan(result.histories["train_loss"][s, result.epochs[s]:]))  # frozen after


def test_divergence_thresholds_come_from_the_config():
    # The same run with the loss factor and the weight bound out of reach trains on.
    result = _train(activation="relu", delta="multi", init="xavier-depth", init_sd=0.01, lr=1.0, max_epochs=2,
                    divergence_loss_factor=1e300, divergence_max_weight=1e300)
    finite_loss = np.isfinite(result.histories["train_loss"][:, -1])
    assert set(result.status[finite_loss]) <= {"max_epochs", "stopped"}
    assert all(r.startswith("non-finite") for r in np.asarray(result.stop_reason)[~finite_loss])


def test_correct_shuffle_is_a_fresh_permutation_per_seed_and_epoch():
    p0 = epoch_permutations("k", 8, [0, 1], 0, 50)
    p1 = epoch_permutations("k", 8, [0, 1], 1, 50)
    for perm in (*p0, *p1):
        assert sorted(perm) == list(range(50))
    assert not np.array_equal(p0[0], p0[1]) and not np.array_equal(p0[0], p1[0])


def test_original_shuffle_defect_collapses_the_training_set():
    """docs/references.md: 1024 rows, batch 32 → fewer distinct rows each epoch, one batch at the end."""
    rows = torch.arange(1024, dtype=torch.float64).reshape(1, 32, 32, 1)
    distinct = []
    for epoch in range(40):
        defective_shuffle_(rows, "k", 8, [0], epoch)
        distinct.append(len(torch.unique(rows)))
    assert distinct[0] < 1024 * 0.75
    assert all(a >= b for a, b in zip(distinct, distinct[1:]))
    assert distinct[-1] == 32


def test_checkpoint_of_other_data_is_not_resumed(tmp_path):
    """A checkpoint is resumed only for the same settings and the same training data."""
    ckpt = tmp_path / "ck.pt"
    cfg = {**BASE, "max_epochs": 4, "checkpoint_every": 1}
    train_ensemble("exp", cfg, 6, DATA, dtype="float64", checkpoint_path=ckpt, progress=False, stop_after_epochs=2)
    other = make_synthetic(96, 32, dim=4, seed=1)
    resumed = train_ensemble("exp", cfg, 6, other, dtype="float64", checkpoint_path=ckpt, progress=False)
    fresh = train_ensemble("exp", cfg, 6, other, dtype="float64", progress=False)
    for key in ("A", "b", "delta"):
        assert np.array_equal(resumed.weights[key], fresh.weights[key])


def test_defect_mode_needs_a_dividing_batch():
    with pytest.raises(ValueError, match="batch_size"):
        _train(shuffle="original-defect", batch_size=20)


def test_resume_in_process_is_bitwise_identical(tmp_path):
    ckpt = tmp_path / "ck.pt"
    full = _train(max_epochs=5)
    cfg = {**BASE, "max_epochs": 5, "checkpoint_every": 2}
    assert train_ensemble("exp", cfg, 6, DATA, dtype="float64", checkpoint_path=ckpt, progress=False, stop_after_epochs=3) is None
    resumed = train_ensemble("exp", cfg, 6, DATA, dtype="float64", checkpoint_path=ckpt, progress=False)
    for key in ("A", "b", "delta"):
        assert np.array_equal(full.weights[key], resumed.weights[key])
    np.testing.assert_array_equal(full.histories["train_loss"], resumed.histories["train_loss"])


def test_output_file_round_trip(tmp_path):
    result = _train()
    save_result(tmp_path / "out.npz", result)
    arrays, meta = read_npz(tmp_path / "out.npz")
    assert arrays["A"].shape == (3, 6, 4, 4) and arrays["A_init"].shape == (3, 6, 4, 4)
    assert list(arrays["status"]) == list(result.status)
    assert meta["depth"] == 6 and meta["config"]["lr"] == 0.01
    assert {"torch", "numpy", "git_commit"} <= set(meta["versions"])


#: Every training option added for the training-side phase diagram, in the combinations the study uses.
NEW_OPTIONS = {
    "smooth-fixed-sgd": dict(init_depth_profile="smooth", delta="fixed", alpha=1.0, optimizer="sgd", lr=0.05,
                             lr_depth_exponent=1.0),
    "brownian-sqrt-full-batch": dict(init_depth_profile="brownian", delta="fixed", alpha=0.5, optimizer="sgd",
                                     lr=0.05, lr_depth_exponent=0.5, batch_size=96),
    "two-matrix": dict(block="two-matrix", hidden_width=7, init_depth_profile="smooth", delta="multi"),
}


def test_lr_depth_exponent_scales_the_step():
    scaled = _train(optimizer="sgd", lr=0.01, lr_depth_exponent=1.0)
    plain = _train(optimizer="sgd", lr=0.01 * 6)
    for key in ("A", "b", "delta"):
        assert np.array_equal(scaled.weights[key], plain.weights[key])
    assert not np.array_equal(scaled.weights["A"], _train(optimizer="sgd", lr=0.01).weights["A"])


@pytest.mark.parametrize("name", list(NEW_OPTIONS))
def test_new_options_train_and_resume_bitwise(tmp_path, name):
    options = NEW_OPTIONS[name]
    full = _train(max_epochs=5, **options)
    loss = full.histories["train_loss"]
    assert np.all(np.isfinite(loss)) and np.all(loss[:, -1] < loss[:, 0])
    cfg = {**BASE, **options, "max_epochs": 5, "checkpoint_every": 2}
    ckpt = tmp_path / "ck.pt"
    assert train_ensemble("exp", cfg, 6, DATA, dtype="float64", checkpoint_path=ckpt, progress=False,
                          stop_after_epochs=3) is None
    resumed = train_ensemble("exp", cfg, 6, DATA, dtype="float64", checkpoint_path=ckpt, progress=False)
    assert set(full.weights) == set(resumed.weights)
    for key in full.weights:
        assert np.array_equal(full.weights[key], resumed.weights[key]), key


def test_two_matrix_output_keeps_V(tmp_path):
    result = _train(**NEW_OPTIONS["two-matrix"])
    save_result(tmp_path / "out.npz", result)
    arrays, meta = read_npz(tmp_path / "out.npz")
    assert arrays["A"].shape == (3, 6, 7, 4) and arrays["V"].shape == (3, 6, 4, 7)
    assert arrays["V_init"].shape == arrays["V"].shape and not np.array_equal(arrays["V"], arrays["V_init"])
    assert meta["config"]["block"] == "two-matrix" and meta["config"]["hidden_width"] == 7
