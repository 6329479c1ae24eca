"""Snakemake adapter: one experiment's networks (trained and at initialisation) against the
limit systems of their kernel-smoothed weights (docs/maths.md §5)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.fbsde import write_trained  # noqa: E402

torch.set_num_threads(snakemake.threads)
res = write_trained(list(snakemake.input.train), snakemake.input.dataset, snakemake.params.cfg, dict(snakemake.output.items()))
logging.info("slopes against depth (median over seeds):\n%s", res["slopes"].to_string(index=False))
