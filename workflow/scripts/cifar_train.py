"""Snakemake adapter: train all seeds of one convolutional (experiment, depth), resuming from a checkpoint."""

import logging
import sys
from pathlib import Path

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.cnn.train import save_conv_result, train_conv  # noqa: E402
from resnet_scaling.io import read_npz  # noqa: E402

torch.set_num_threads(snakemake.threads)
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
