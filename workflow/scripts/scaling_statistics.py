"""Snakemake adapter: every statistic of every quantity, depth and seed of one experiment, and per
network its training outcome and the non-affine share of its output on the test inputs."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from tqdm import tqdm  # noqa: E402

from resnet_scaling.io import read_npz, write_csv  # noqa: E402
from resnet_scaling.scaling.statistics import experiment_statistics  # noqa: E402
from resnet_scaling.scaling.weights import load_training  # noqa: E402

data, _ = read_npz(snakemake.input.dataset)
stats, training = experiment_statistics(
    (load_training(path) for path in tqdm(snakemake.input.train, desc=snakemake.wildcards.exp, file=sys.stderr)),
    window_fraction=snakemake.params.window_fraction,
    labels=snakemake.params.labels,
    x_test=data["x_test"],  # the non-affine share of every network's output
)
write_csv(snakemake.output.statistics, stats)
write_csv(snakemake.output.training, training)
logging.info("%d rows of statistics, %d networks", len(stats), len(training))
