"""Snakemake adapter: the statistics of docs/maths.md §3 of every kernel sequence, depth and seed of one experiment."""

import logging

import pandas as pd

from resnet_scaling.cnn.extract import statistics_table
from resnet_scaling.cnn.scaling import labels
from resnet_scaling.io import write_csv
from resnet_scaling.scaling.tables import read_csv_checked
from resnet_scaling.job import start_job

start_job(snakemake)
layers = pd.concat(
    [read_csv_checked(path, ("experiment", "depth", "seed", "quantity", "norm", "k", "value"), finite=("depth", "k"))
     for path in snakemake.input.layers],
    ignore_index=True,
)
training = pd.concat([read_csv_checked(path, ("experiment", "depth", "seed", "status")) for path in snakemake.input.training],
                     ignore_index=True)
stats = statistics_table(layers, labels(snakemake.params.labels["dataset"]))
write_csv(snakemake.output.statistics, stats)
write_csv(snakemake.output.training, training.sort_values(["depth", "seed"], ignore_index=True))
logging.info("%d rows of statistics, %d networks", len(stats), len(training))
