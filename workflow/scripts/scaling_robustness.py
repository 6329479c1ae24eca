"""Snakemake adapter: exponents by depth window, inclusion rule, norm and optimiser steps."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "a", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.scaling.exponents import FitSettings  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402
from resnet_scaling.plots.scaling import robustness_figure  # noqa: E402
from resnet_scaling.scaling.robustness import robustness_table  # noqa: E402
from resnet_scaling.scaling.tables import read_statistics, read_training  # noqa: E402

settings = FitSettings.from_config(
    {"fit": snakemake.params.fit, "bootstrap": snakemake.params.bootstrap, "include_status": snakemake.params.include_status}
)
table = robustness_table(
    [read_statistics(path) for path in snakemake.input.statistics],
    [read_training(path) for path in snakemake.input.training],
    snakemake.params.steps_per_epoch,
    settings,
    snakemake.params.window_depths,
)
write_csv(snakemake.output.table, table)
robustness_figure(table, snakemake.output.png)
logging.info("%d robustness rows", len(table))
