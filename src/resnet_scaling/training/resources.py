"""Memory requests of the analysis jobs whose size grows with depth, from measured peaks, and
the runtime requests of the training jobs, from the measured cost per layer and epoch.

A cluster kills a job that exceeds its request and a workstation run with ``--resources
mem_mb=…`` schedules by it, so each request must cover the job's peak without asking for
many times more. Peaks are measured on CPU (benchmark files, ``max_rss``) at the default
and the paper scale; each model is linear in seeds × deepest depth with a term per layer
that grows with the width d (weights, smoothed coefficients) and, for the backward
comparison, with the number of inputs (forward and adjoint paths).
"""

from __future__ import annotations

import math


#: Elements of one chunk of the trained backward comparison
#: (:data:`resnet_scaling.fbsde.trained.CHUNK_ELEMENTS`, checked equal by the tests).
FBSDE_CHUNK_ELEMENTS = 2**24


def fbsde_trained_mem_mb(seeds: int, max_depth: int, width: int, n_inputs: int) -> int:
    """MB for the comparison of one experiment's networks with their backward limits: one
    depth's training output (trained and initial weights in float32, one state in float64)
    and one chunk of networks at a time. Measured: 3032 MB at S = 8, L = 9100, d = 25 and
    1579 MB at d = 10 (16 inputs); 1186 MB at most at S = 4, L = 1024."""
    chunk = max(1, min(seeds, FBSDE_CHUNK_ELEMENTS // (max_depth * width * max(width, n_inputs))))
    read = seeds * max_depth * width * width * 16  # bytes
    per_network_layer = 120 * width * width + 400 * n_inputs  # bytes
    return int(1200 + (read + chunk * max_depth * per_network_layer) / 1e6)


def limits_fit_mem_mb(seeds: int, max_depth: int, width: int) -> int:
    """MB for fitting one experiment's limit to its deepest networks, one depth at a time.
    Measured: 2202 MB at S = 8, L = 9100, d = 25 and 1180 MB at d = 10; 1181 MB at most at
    S = 4, L = 1024."""
    per_seed_layer = 1500 + 30 * width * width  # bytes
    return int(1200 + seeds * max_depth * per_seed_layer / 1e6)


# -- runtime requests of the training jobs ------------------------------------------------
#
# A training job asks for  START + SAFETY × (cost of max_epochs epochs) × attempt  minutes,
# at most MAX_TRAIN_MINUTES: the epoch cost below is what a job may take if no seed stops
# early, on the device the job is placed on. A job that still runs at its limit is killed,
# resubmitted (the profile's retries) and resumes from its last checkpoint.

#: Minutes for what does not scale with epochs: Python and torch start-up, the compiled
#: engine's build on a fresh node, reading the data, the per-layer table and the writes.
TRAIN_START_MINUTES = 10
#: Headroom over the modelled epochs: a busy or slower node, caches that the deepest networks
#: overflow (the cost per layer grows by up to 40 % from L = 1000 to 3000), the stopping
#: rule's bookkeeping and checkpoints. The committed paper run of the two synthetic
#: experiments (figures/paper/: 88 jobs beside other runs on 2 cores) took 39 CPU-minutes of
#: training where the model gives 18.6 at its epochs: a factor 2.1 under that load.
TRAIN_SAFETY_FACTOR = 3.0
#: The longest request: partitions commonly refuse more than a day.
MAX_TRAIN_MINUTES = 24 * 60
#: The request of a training job the cost model has no measurement for (another width,
#: activation, block, batch size, dtype or engine, or fully connected training on a GPU):
#: the longest allowed, so that no unmeasured job is killed before it could have finished.
DEFAULT_TRAIN_MINUTES = MAX_TRAIN_MINUTES

#: Fully connected networks on the compiled engine (one thread, float32, the one-matrix
#: block, Adam, batch 32, S networks at once): CPU µs per (layer × network × optimiser step),
#: keyed by (width d, activation). The upper ends of the ranges benchmarks/paper_grid.py
#: measured at L = 100…9100 on the 2-core development machine under a load of 4–5 (docs/costs.md,
#: Benchmarks: 2.9–3.7 and 1.8–2.7 µs at d = 10 for tanh and ReLU, 10–11 and 7.5–9.2 at d = 25).
FC_MEASURED_BATCH = 32
FC_STEP_US = {(10, "tanh"): 3.7, (10, "relu"): 2.7, (25, "tanh"): 11.0, (25, "relu"): 9.2}
#: The per-epoch evaluation (training and test loss): CPU µs per (layer × network × sample).
#: Its ratio to a step was measured beside the step with paper_grid's epoch on the compiled
#: engine at L = 1000 and 3000 (tanh 1.0 % and 0.79 % of a step at d = 10 and 25, ReLU 0.46 %
#: and 0.50 %: a quarter of a tanh epoch at 1,024 + 256 samples), rounded up and applied
#: to the step figures above.
FC_EVAL_US = {(10, "tanh"): 0.04, (10, "relu"): 0.015, (25, "tanh"): 0.09, (25, "relu"): 0.05}

#: Convolutional ResNets (every block costs about the same: channels double as the image area
#: quarters): seconds per (block × epoch) on 50,000 training images and 10,000 test images at
#: width 64, one network. CPU: measured, benchmarks/conv_train_throughput.py trains 24.9
#: images/s at depth 8 on one thread, 5.0 ms per block and image, plus the test pass (a
#: third of a training image each). GPU: no measurement here; the FLOP count of docs/costs.md
#: (24 TFLOP per block and epoch) at a sustained 60 TFLOP/s is 0.4 s, taken as 0.5 s.
CONV_BLOCK_EPOCH_S = {"cpu": 270.0, "gpu": 0.5}


def wants_gpu(device: str, convolutional: bool) -> bool:
    """Whether a training job is placed on a GPU node: ``cuda`` always, ``cpu`` never, and
    ``auto`` for the convolutional networks only (the fully connected engine is launch-bound
    on a GPU: a GPU-hour does about what one to four CPU core-hours do, docs/design.md)."""
    return device == "cuda" or (device == "auto" and convolutional)


def fc_unmeasured(*, width: int, activation: str, block: str, engine: str, dtype: str,
                  batch_size: int, on_gpu: bool) -> str | None:
    """Why the cost model has no measurement for a fully connected training job; None when
    it has one (the compiled engine on a CPU, float32, a measured width and activation)."""
    if on_gpu:
        return "fully connected training on a GPU"
    if engine != "auto" or block != "one-matrix" or activation not in ("tanh", "relu"):
        return f"the {engine if engine != 'auto' else 'per-layer'} engine ({block} block, {activation})"
    if dtype != "float32":
        return f"dtype {dtype}"
    if (width, activation) not in FC_STEP_US:
        return f"width {width} (measured: {sorted({w for w, _ in FC_STEP_US})})"
    if batch_size != FC_MEASURED_BATCH:
        return f"batch size {batch_size} (measured: {FC_MEASURED_BATCH})"
    return None


def fc_epoch_seconds(*, depth: int, seeds: int, width: int, activation: str, batch_size: int,
                     n_train: int, n_test: int) -> float:
    """CPU seconds of one epoch of S networks of depth L: ceil(n_train / batch) steps and the
    evaluation of n_train + n_test samples, each linear in L × S (a measured width and
    activation: :func:`fc_unmeasured` is None)."""
    key = (width, activation)
    steps = -(-n_train // batch_size)
    per_layer_network_us = steps * FC_STEP_US[key] + (n_train + n_test) * FC_EVAL_US[key]
    return depth * seeds * per_layer_network_us * 1e-6


def conv_epoch_seconds(*, depth: int, seeds: int, width: int, n_train: int, on_gpu: bool) -> float:
    """Seconds of one epoch of the S convolutional networks of depth L (trained one after the
    other), in proportion to the blocks, the training images and width²."""
    per_block = CONV_BLOCK_EPOCH_S["gpu" if on_gpu else "cpu"]
    return seeds * depth * per_block * (n_train / 50000) * (width / 64) ** 2


def train_runtime_minutes(epoch_seconds: float | None, epochs: int, attempt: int = 1) -> int:
    """Minutes a training job asks for: TRAIN_START_MINUTES + TRAIN_SAFETY_FACTOR × epochs ×
    epoch_seconds, times the attempt (a resubmitted job asks more), at most MAX_TRAIN_MINUTES;
    DEFAULT_TRAIN_MINUTES where the cost model has no measurement (``epoch_seconds`` None)."""
    if epoch_seconds is None:
        return DEFAULT_TRAIN_MINUTES
    minutes = TRAIN_START_MINUTES + TRAIN_SAFETY_FACTOR * epochs * epoch_seconds / 60 * attempt
    return min(MAX_TRAIN_MINUTES, math.ceil(minutes))
