"""Snakemake adapter: the scaling figures of the whole stage (max norm, hypothesis tests, training
loss, regime summary), from the stage's tables."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "a", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling.scaling import tables  # noqa: E402
from resnet_scaling.scaling.exponents import RegimeThresholds  # noqa: E402
from resnet_scaling.plots import scaling as figures  # noqa: E402
from resnet_scaling.training.data import dataset_affine_floor  # noqa: E402


def read(paths, reader):
    """One table from the experiments' files, each checked by ``reader``."""
    return pd.concat([reader(p) for p in paths], ignore_index=True)


inp, params, out = snakemake.input, snakemake.params, snakemake.output
statistics, exponents = read(inp.statistics, tables.read_statistics), tables.read_exponents(inp.exponents)
figures.max_norm_figure(statistics, exponents, out.max_norm_png, params.include_status)
figures.hypothesis_figure(statistics, exponents, out.hypothesis_png, params.include_status)
floors = {exp: dataset_affine_floor(path) for exp, path in params.datasets.items()}  # docs/maths.md §2
figures.loss_figure(read(inp.training, tables.read_training), params.epsilons, out.loss_png, floors)
figures.summary_figure(tables.read_regimes(inp.regimes), RegimeThresholds.from_config(params.regime), out.summary_png)
logging.info("wrote %s", list(out))
