"""Snakemake adapter: a figure of the convolutional experiments (max norm, or the hypothesis statistics)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling.cnn.scaling import read_conv_statistics  # noqa: E402
from resnet_scaling.plots.cifar import FIGURES, scaling_figure  # noqa: E402
from resnet_scaling.scaling.tables import read_table  # noqa: E402

statistics = pd.concat([read_conv_statistics(p, n) for p, n in
                        zip(snakemake.input.statistics, snakemake.params.networks, strict=True)], ignore_index=True)
scaling_figure(statistics, read_table(snakemake.input.exponents), snakemake.output.pdf,
               FIGURES[snakemake.wildcards.name])
