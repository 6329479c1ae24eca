"""Snakemake adapter: a figure of the convolutional experiments (max norm, or the hypothesis statistics)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling.cnn.scaling import read_conv_statistics  # noqa: E402
from resnet_scaling.plots.cifar import FIGURES, scaling_figure  # noqa: E402
from resnet_scaling.scaling.tables import read_table  # noqa: E402

statistics = pd.concat([read_conv_statistics(p) for p in snakemake.input.statistics], ignore_index=True)
scaling_figure(statistics, read_table(snakemake.input.exponents), snakemake.output.pdf,
               FIGURES[snakemake.wildcards.name])
