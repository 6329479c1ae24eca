"""Snakemake adapter: W1 of the laws of h_L and ‖∂h_L/∂h_0‖ to the diffusion (docs/maths.md §6)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.init_limits import diffusion_law_tables  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402

torch.set_num_threads(snakemake.threads)
w1, quantiles = diffusion_law_tables(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output.w1, w1)
write_csv(snakemake.output.quantiles, quantiles)
logging.info("W1 table:\n%s", w1.to_string())
