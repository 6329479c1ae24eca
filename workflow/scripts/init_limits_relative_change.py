"""Snakemake adapter: Marion et al.'s relative change against L, i.i.d. and smooth weights (docs/maths.md §6)."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.init_limits import relative_change_table  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402

torch.set_num_threads(snakemake.threads)
table = relative_change_table(snakemake.params.cfg, snakemake.params.seed, progress=True)
write_csv(snakemake.output[0], table)
logging.info("relative changes:\n%s", table.to_string())
