"""Snakemake adapter: fit the limit of one experiment's deepest trained networks (docs/maths.md §4),
and draw the figures of the fit."""

import logging

from resnet_scaling.limits import write_fit
from resnet_scaling.plots import limits as figures
from resnet_scaling.plots import png_outputs
from resnet_scaling.job import start_job

start_job(snakemake)
out = snakemake.output
summary = write_fit(
    list(snakemake.input.train),
    snakemake.input.dataset,
    snakemake.input.regimes,
    snakemake.input.exponents,
    snakemake.params.cfg,
    dict(out.items()),
    experiment=snakemake.wildcards.exp,
    seed=snakemake.params.seed,
    exponent_statistic=snakemake.params.exponent_statistic,
)
logging.info("summary: %s", summary)
figures.fit_figures(dict(out.items()), png_outputs(out))
logging.info("wrote %s", list(out))
