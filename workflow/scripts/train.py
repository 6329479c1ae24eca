"""Snakemake adapter: train all seeds of one (experiment, depth), resuming from a checkpoint,
then write the per-layer table of their layer sequences (the weights stay in the training
output only)."""

import logging
from pathlib import Path

from resnet_scaling.io import read_npz
from resnet_scaling.training.train import save_result, train_ensemble
from resnet_scaling.scaling.weights import extract
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
data, _ = read_npz(snakemake.input[0])
result = train_ensemble(
    snakemake.wildcards.exp,
    snakemake.params.experiment,
    int(snakemake.wildcards.depth),
    data,
    base_seed=snakemake.params.seed,
    device=snakemake.params.device,
    dtype=snakemake.params.dtype,
    engine=snakemake.params.engine,
    checkpoint_path=snakemake.params.checkpoint,
)
save_result(snakemake.output.train, result)
logging.info("statuses %s, epochs %s, %.1f s", result.status.tolist(), result.epochs.tolist(), result.wall_time_s)
extract(snakemake.output.train, snakemake.output.layers)
# The outputs are complete: the checkpoint would only take disk space (a rerun is bitwise identical).
Path(snakemake.params.checkpoint).unlink(missing_ok=True)
