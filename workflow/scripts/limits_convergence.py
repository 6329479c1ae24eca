"""Snakemake adapter: synthetic weights against their known limits (docs/maths.md §4, §7), and the
figure of the study."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.limits import write_limit_convergence  # noqa: E402
from resnet_scaling.plots import limits as figures  # noqa: E402
from resnet_scaling.scaling.tables import read_table  # noqa: E402

torch.set_num_threads(snakemake.threads)
out = snakemake.output
table, fits = write_limit_convergence(snakemake.params.cfg, out.table, out.fits)
logging.info("slopes:\n%s", fits.to_string(index=False))
figures.convergence_figure(read_table(out.table), read_table(out.fits), out.convergence_png)
logging.info("wrote %s", list(out))
