"""Snakemake adapter: exponents by depth window, inclusion rule, norm and optimiser steps."""

import logging

from resnet_scaling.scaling.exponents import FitSettings
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.io import write_csv
from resnet_scaling.plots.regimes import robustness_figure
from resnet_scaling.scaling.robustness import robustness_table
from resnet_scaling.scaling.tables import read_statistics, read_training
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
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
