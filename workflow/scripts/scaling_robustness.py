"""Snakemake adapter: exponents by depth window, inclusion rule, norm and optimiser steps."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.scaling.exponents import FitSettings  # noqa: E402
from resnet_scaling.scaling.regime_rule import RegimeThresholds  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402
from resnet_scaling.plots.regimes import robustness_figure  # noqa: E402
from resnet_scaling.scaling.robustness import robustness_table  # noqa: E402
from resnet_scaling.scaling.tables import read_statistics, read_training  # noqa: E402

settings = FitSettings.from_config(
    {"fit": snakemake.params.fit, "bootstrap": snakemake.params.bootstrap, "include_status": snakemake.params.include_status,
     "population": snakemake.params.population}
)
table = robustness_table(
    [read_statistics(path, n) for path, n in zip(snakemake.input.statistics, snakemake.params.networks, strict=True)],
    [read_training(path, n) for path, n in zip(snakemake.input.training, snakemake.params.networks, strict=True)],
    snakemake.params.steps_per_epoch,
    settings,
    snakemake.params.window_depths,
    RegimeThresholds.from_config(snakemake.params.regime),
)
write_csv(snakemake.output.table, table)
robustness_figure(table, snakemake.output.png)
logging.info("%d robustness rows", len(table))
