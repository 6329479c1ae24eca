"""Snakemake adapter: W1 of the laws of h_L and ‖∂h_L/∂h_0‖ to the diffusion (docs/maths.md §6)."""

import logging

from resnet_scaling.init_limits import diffusion_law_tables
from resnet_scaling.io import write_csv
from resnet_scaling.job import start_job

start_job(snakemake)
w1, quantiles = diffusion_law_tables(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output.w1, w1)
write_csv(snakemake.output.quantiles, quantiles)
logging.info("W1 table:\n%s", w1.to_string())
