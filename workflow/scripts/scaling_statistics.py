"""Snakemake adapter: every statistic of every quantity, depth and seed of one experiment, and per
network its training outcome and the non-affine share of its output on the test inputs."""

import logging
import sys

from tqdm import tqdm

from resnet_scaling.io import read_npz, write_csv
from resnet_scaling.scaling.statistics import experiment_statistics
from resnet_scaling.scaling.weights import load_training
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
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
