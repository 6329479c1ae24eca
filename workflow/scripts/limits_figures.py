"""Snakemake adapter: the limit stage's figures, from its tables only."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling.plots import limits as figs  # noqa: E402

inp, out = snakemake.input, snakemake.output
if "fits" in inp.keys():
    figs.convergence_figure(pd.read_csv(inp.table), pd.read_csv(inp.fits), out.convergence)
else:
    figs.trajectories_figure(pd.read_csv(inp.trajectories), out.trajectories)
    figs.error_figure(pd.read_csv(inp.pathwise), pd.read_csv(inp.generative), out.error)
    figs.coefficients_figure(pd.read_csv(inp.coefficients), out.coefficients)
logging.info("wrote %s", list(out))
