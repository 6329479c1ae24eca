"""Snakemake adapter: one experiment's networks (trained and at initialisation) against the
limit systems of their kernel-smoothed weights (docs/maths.md §5), and their figures."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.fbsde import write_trained  # noqa: E402
from resnet_scaling.plots import fbsde as figures  # noqa: E402
from resnet_scaling.plots import png_outputs  # noqa: E402

torch.set_num_threads(snakemake.threads)
out = snakemake.output
res = write_trained(list(snakemake.input.train), snakemake.input.dataset, snakemake.params.cfg, dict(out.items()))
logging.info("slopes against depth (median over seeds):\n%s", res["slopes"].to_string(index=False))
figures.trained_figures(dict(out.items()), png_outputs(out), snakemake.wildcards.exp)
logging.info("wrote %s", list(out))
