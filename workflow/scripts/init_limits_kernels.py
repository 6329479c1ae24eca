"""Snakemake adapter: empirical kernels of wide networks against the kernel ODE (docs/maths.md §6)."""

import logging

from resnet_scaling.io import write_csv
from resnet_scaling.init_limits.kernels import kernel_width_table
from resnet_scaling.job import start_job

start_job(snakemake)
errors, paths = kernel_width_table(snakemake.params.cfg, snakemake.params.seed)
write_csv(snakemake.output.errors, errors)
write_csv(snakemake.output.paths, paths)
logging.info("kernel errors:\n%s", errors.to_string())
