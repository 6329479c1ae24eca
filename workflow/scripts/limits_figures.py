"""Snakemake adapter: the limit stage's figures, from its tables only."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.plots import limits as figs  # noqa: E402
from resnet_scaling.tables import read_table  # noqa: E402

inp, out = snakemake.input, snakemake.output
if "fits" in inp.keys():
    figs.convergence_figure(read_table(inp.table), read_table(inp.fits), out.convergence)
else:
    figs.trajectories_figure(read_table(inp.trajectories), out.trajectories)
    # the moment-matched diffusion is compared in law only: no pathwise rows
    figs.error_figure(read_table(inp.pathwise, allow_empty=True), read_table(inp.generative), out.error)
    figs.coefficients_figure(read_table(inp.coefficients), out.coefficients)
logging.info("wrote %s", list(out))
