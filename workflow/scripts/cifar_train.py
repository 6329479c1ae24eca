"""Snakemake adapter: train all seeds of one convolutional (experiment, depth), resuming from a checkpoint."""

import logging
from pathlib import Path

from resnet_scaling.cnn.train import save_conv_result, train_conv
from resnet_scaling.io import read_npz
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
data, _ = read_npz(snakemake.input[0])
result = train_conv(
    snakemake.wildcards.cexp,
    snakemake.params.experiment,
    int(snakemake.wildcards.depth),
    data,
    base_seed=snakemake.params.seed,
    device=snakemake.params.device,
    checkpoint_path=snakemake.params.checkpoint,
)
save_conv_result(snakemake.output[0], result)
# The output is complete: its checkpoint would only take disk space (a rerun is bitwise identical on the CPU).
Path(snakemake.params.checkpoint).unlink(missing_ok=True)
logging.info("statuses %s, %.1f s on %s", result.status.tolist(), result.metadata["wall_time_s"],
             result.metadata["device"])
