"""Snakemake adapter: output correlation of two inputs against depth (docs/maths.md §6)."""

import logging

from resnet_scaling.init_limits import correlation_table
from resnet_scaling.io import write_csv
from resnet_scaling.job import start_job

start_job(snakemake)
table = correlation_table(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output[0], table)
logging.info("correlations:\n%s", table.to_string())
