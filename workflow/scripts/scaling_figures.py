"""Snakemake adapter: the scaling figures of the whole stage (max norm, hypothesis tests, training
loss, regime summary), from the stage's tables."""

import logging

import pandas as pd

from resnet_scaling.scaling import tables
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.plots import regimes as regime_figures
from resnet_scaling.plots import scaling as figures
from resnet_scaling.training.data import dataset_affine_floor
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
def read(paths, reader):
    """One table from the experiments' files, each checked by ``reader`` against the networks
    the config trains."""
    return pd.concat([reader(p, n) for p, n in zip(paths, params.networks, strict=True)], ignore_index=True)

inp, params, out = snakemake.input, snakemake.params, snakemake.output
statistics = read(inp.statistics, tables.read_statistics)
exponents = tables.read_exponents(inp.exponents, params.experiments)
figures.max_norm_figure(statistics, exponents, out.max_norm_png, params.include_status)
figures.hypothesis_figure(statistics, exponents, out.hypothesis_png, params.include_status)
floors = {exp: dataset_affine_floor(path) for exp, path in params.datasets.items()}  # docs/maths.md §2
figures.loss_figure(read(inp.training, tables.read_training), params.epsilons, out.loss_png, floors)
regime_figures.summary_figure(tables.read_regimes(inp.regimes, params.experiments),
                             RegimeThresholds.from_config(params.regime), out.summary_png)
logging.info("wrote %s", list(out))
