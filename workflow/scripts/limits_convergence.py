"""Snakemake adapter: synthetic weights against their known limits (docs/maths.md §4, §7), and the
figure of the study."""

import logging

from resnet_scaling.limits import write_limit_convergence
from resnet_scaling.plots import limits as figures
from resnet_scaling.scaling.tables import read_table
from resnet_scaling.job import start_job

start_job(snakemake)
out = snakemake.output
table, fits = write_limit_convergence(snakemake.params.cfg, out.table, out.fits)
logging.info("slopes:\n%s", fits.to_string(index=False))
figures.convergence_figure(read_table(out.table), read_table(out.fits), out.convergence_png)
logging.info("wrote %s", list(out))
