"""Snakemake adapter: one experiment's networks (trained and at initialisation) against the
limit systems of their kernel-smoothed weights (docs/maths.md §5), and their figures."""

import logging

from resnet_scaling.fbsde import write_trained
from resnet_scaling.plots import fbsde as figures
from resnet_scaling.plots import png_outputs
from resnet_scaling.job import start_job

start_job(snakemake)
out = snakemake.output
res = write_trained(list(snakemake.input.train), snakemake.input.dataset, snakemake.params.cfg, dict(out.items()))
logging.info("slopes against depth (median over seeds):\n%s", res["slopes"].to_string(index=False))
figures.trained_figures(dict(out.items()), png_outputs(out), snakemake.wildcards.exp)
logging.info("wrote %s", list(out))
