"""Snakemake adapter: output correlation of two inputs against depth (docs/maths.md §6)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.init_limits import correlation_table  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402

torch.set_num_threads(snakemake.threads)
table = correlation_table(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output[0], table)
logging.info("correlations:\n%s", table.to_string())
