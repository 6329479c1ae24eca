"""Snakemake adapter: empirical kernels of wide networks against the kernel ODE (docs/maths.md §6)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.io import write_csv  # noqa: E402
from resnet_scaling.init_limits.kernels import kernel_width_table  # noqa: E402

torch.set_num_threads(snakemake.threads)
errors, paths = kernel_width_table(snakemake.params.cfg, snakemake.params.seed)
write_csv(snakemake.output.errors, errors)
write_csv(snakemake.output.paths, paths)
logging.info("kernel errors:\n%s", errors.to_string())
