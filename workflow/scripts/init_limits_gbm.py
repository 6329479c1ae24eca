"""Snakemake adapter: the d = 1 identity network against geometric Brownian motion (docs/maths.md §6)."""

import logging

from resnet_scaling.init_limits import gbm_tables
from resnet_scaling.io import write_csv
from resnet_scaling.job import start_job

start_job(snakemake)
moments, density = gbm_tables(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output.moments, moments)
write_csv(snakemake.output.density, density)
logging.info("moments of log|Y_1|:\n%s", moments.to_string())
