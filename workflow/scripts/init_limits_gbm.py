"""Snakemake adapter: the d = 1 identity network against geometric Brownian motion (docs/maths.md §6)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.init_limits import gbm_tables  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402

torch.set_num_threads(snakemake.threads)
moments, density = gbm_tables(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output.moments, moments)
write_csv(snakemake.output.density, density)
logging.info("moments of log|Y_1|:\n%s", moments.to_string())
