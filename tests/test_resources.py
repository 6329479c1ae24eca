"""Memory requests of the analysis jobs against the peaks measured at both scales."""

import pytest

from resnet_scaling.training.resources import fbsde_trained_mem_mb, limits_fit_mem_mb

# (seeds, deepest depth, width[, inputs]) -> measured peak MB (benchmark max_rss): the paper gallery
# (figures/paper/cost.csv, 16 inputs for fbsde) and the default one (S = 4, L = 1024, 32 inputs)
FBSDE_PEAKS = {(8, 9100, 10, 16): 1579, (8, 9100, 25, 16): 3032, (4, 1024, 10, 32): 1186, (4, 1024, 25, 32): 1186}
LIMITS_PEAKS = {(8, 9100, 10): 1180, (8, 9100, 25): 2202, (4, 1024, 10): 1181, (4, 1024, 25): 1181}


@pytest.mark.parametrize("shape, peak", FBSDE_PEAKS.items())
def test_backward_comparison_request_covers_its_peak_within_a_factor_two(shape, peak):
    assert peak <= fbsde_trained_mem_mb(*shape) <= 2 * peak


@pytest.mark.parametrize("shape, peak", LIMITS_PEAKS.items())
def test_limit_fit_request_covers_its_peak_within_a_factor_two(shape, peak):
    assert peak <= limits_fit_mem_mb(*shape) <= 2 * peak


def test_the_modelled_chunk_is_the_comparisons_chunk():
    from resnet_scaling.fbsde.trained import CHUNK_ELEMENTS
    from resnet_scaling.training.resources import FBSDE_CHUNK_ELEMENTS

    assert FBSDE_CHUNK_ELEMENTS == CHUNK_ELEMENTS


def test_requests_grow_with_depth_width_and_inputs():
    assert fbsde_trained_mem_mb(8, 9100, 25, 32) > fbsde_trained_mem_mb(8, 2116, 25, 32)
    # more inputs take more memory while every network fits one chunk; deeper, the chunk bound holds
    assert fbsde_trained_mem_mb(4, 1024, 25, 64) > fbsde_trained_mem_mb(4, 1024, 25, 32)
    assert limits_fit_mem_mb(8, 9100, 25) > limits_fit_mem_mb(8, 9100, 10)


# -- runtime requests of the training jobs ------------------------------------------------

from resnet_scaling.training import resources as res  # noqa: E402

MEASURED = dict(block="one-matrix", engine="auto", dtype="float32", batch_size=32, on_gpu=False)


@pytest.mark.parametrize("device, convolutional, gpu", [
    ("auto", False, False), ("cpu", False, False), ("cuda", False, True),
    ("auto", True, True), ("cpu", True, False), ("cuda", True, True),
])
def test_fully_connected_training_goes_to_cpus_and_convolutional_to_gpus_unless_the_device_says(
        device, convolutional, gpu):
    assert res.wants_gpu(device, convolutional) is gpu


@pytest.mark.parametrize("width, activation", sorted(res.FC_STEP_US))
def test_the_measured_cells_have_a_step_and_an_evaluation_cost(width, activation):
    assert res.fc_unmeasured(width=width, activation=activation, **MEASURED) is None
    assert (width, activation) in res.FC_EVAL_US
    # the evaluation of one sample is a small fraction of a step of 32 (a quarter of an epoch at most)
    assert 0 < 1280 * res.FC_EVAL_US[width, activation] < 32 * res.FC_STEP_US[width, activation] / 2


@pytest.mark.parametrize("change, says", [
    (dict(on_gpu=True), "GPU"), (dict(engine="per-layer"), "per-layer engine"),
    (dict(block="two-matrix"), "two-matrix"), (dict(activation="gelu"), "gelu"),
    (dict(dtype="float64"), "float64"), (dict(width=17), "width 17"), (dict(batch_size=64), "batch size 64"),
])
def test_a_job_outside_the_measurements_is_named_with_the_reason(change, says):
    cell = {**MEASURED, "width": 10, "activation": "tanh", **change}
    why = res.fc_unmeasured(**cell)
    assert why is not None and says in why


def test_epoch_cost_is_steps_and_evaluation_linear_in_layers_and_networks():
    args = dict(width=10, activation="tanh", batch_size=32, n_train=1024, n_test=256)
    one = res.fc_epoch_seconds(depth=100, seeds=1, **args)
    assert one == pytest.approx(100 * (32 * 3.7 + 1280 * 0.04) * 1e-6)
    assert res.fc_epoch_seconds(depth=9100, seeds=8, **args) == pytest.approx(91 * 8 * one)
    # a partial last batch is a step
    assert res.fc_epoch_seconds(depth=100, seeds=1, **{**args, "n_train": 1025}) > one


def test_requests_add_start_and_safety_grow_with_attempts_and_stop_at_a_day():
    assert res.MAX_TRAIN_MINUTES == 24 * 60 and res.DEFAULT_TRAIN_MINUTES <= res.MAX_TRAIN_MINUTES
    assert res.train_runtime_minutes(60.0, epochs=10) == res.TRAIN_START_MINUTES + 10 * res.TRAIN_SAFETY_FACTOR
    assert res.train_runtime_minutes(60.0, epochs=10, attempt=2) > res.train_runtime_minutes(60.0, epochs=10)
    assert res.train_runtime_minutes(1e6, epochs=200) == res.MAX_TRAIN_MINUTES
    assert res.train_runtime_minutes(None, epochs=200) == res.DEFAULT_TRAIN_MINUTES


def test_paper_requests_cover_the_committed_run_and_fit_a_day(repo_root):
    """The paper grid's fully connected experiments: the deepest synthetic job well under a day,
    and the modelled training of the committed run (figures/paper/, at the epochs its networks
    took) within a factor 2 of the CPU time that run measured, so that the requests (the model
    times the safety factor) cover it."""
    import pandas as pd

    args = dict(seeds=8, batch_size=32, n_train=1024, n_test=256)
    for activation in ("tanh", "relu"):
        deepest = res.fc_epoch_seconds(depth=9100, activation=activation, width=10, **args)
        assert res.train_runtime_minutes(deepest, epochs=200) < 4 * 60
    training = pd.read_csv(repo_root / "figures" / "paper" / "training.csv")
    cost = pd.read_csv(repo_root / "figures" / "paper" / "cost.csv").set_index("rule")
    modelled = 0.0
    experiments = (("tanh_shared_synthetic", "tanh", 10), ("relu_multi_synthetic", "relu", 10),
                   ("tanh_shared_digits", "tanh", 25), ("relu_multi_digits", "relu", 25))
    for exp, activation, width in experiments:
        epochs = training[training["experiment"] == exp].groupby("depth")["epochs"].max()  # the job's last seed
        assert len(epochs) == 44
        modelled += sum(res.fc_epoch_seconds(depth=int(d), activation=activation, width=width, **args) * n
                        for d, n in epochs.items())
    assert cost.loc["train", "jobs"] == 176
    measured = cost.loc["train", "cpu_s"]
    assert modelled / 2 < measured < 2 * modelled
    assert measured <= res.TRAIN_SAFETY_FACTOR * modelled


def test_conv_requests_follow_blocks_images_and_width():
    gpu = res.conv_epoch_seconds(depth=121, seeds=3, width=64, n_train=50000, on_gpu=True)
    assert gpu == pytest.approx(3 * 121 * res.CONV_BLOCK_EPOCH_S["gpu"])
    assert res.train_runtime_minutes(gpu, epochs=200) <= res.MAX_TRAIN_MINUTES
    assert res.conv_epoch_seconds(depth=121, seeds=3, width=32, n_train=25000, on_gpu=True) == pytest.approx(gpu / 8)
    # 24.9 images/s at depth 8, width 64 on one CPU thread (benchmarks/conv_train_throughput.py)
    assert 50000 / (24.9 * 8) < res.CONV_BLOCK_EPOCH_S["cpu"] < 1.2 * 50000 / (24.9 * 8)
