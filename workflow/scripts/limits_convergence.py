"""Snakemake adapter: synthetic weights against their known limits (docs/maths.md §4, §7)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.limits import write_limit_convergence  # noqa: E402

torch.set_num_threads(snakemake.threads)
table, fits = write_limit_convergence(snakemake.params.cfg, snakemake.output.table, snakemake.output.fits)
logging.info("slopes:\n%s", fits.to_string(index=False))
