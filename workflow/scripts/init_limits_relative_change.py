"""Snakemake adapter: Marion et al.'s relative change against L, i.i.d. and smooth weights (docs/maths.md §6)."""

import logging

from resnet_scaling.init_limits import relative_change_table
from resnet_scaling.io import write_csv
from resnet_scaling.job import start_job

start_job(snakemake)
table = relative_change_table(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output[0], table)
logging.info("relative changes:\n%s", table.to_string())
