"""Snakemake adapter: a figure of the convolutional experiments (max norm, or the hypothesis statistics)."""

import pandas as pd

from resnet_scaling.cnn.scaling import read_conv_statistics
from resnet_scaling.plots.cifar import FIGURES, scaling_figure
from resnet_scaling.scaling.tables import read_table
from resnet_scaling.job import start_job

start_job(snakemake)
statistics = pd.concat([read_conv_statistics(p, n) for p, n in
                        zip(snakemake.input.statistics, snakemake.params.networks, strict=True)], ignore_index=True)
scaling_figure(statistics, read_table(snakemake.input.exponents), snakemake.output.pdf,
               FIGURES[snakemake.wildcards.name])
