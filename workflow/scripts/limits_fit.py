"""Snakemake adapter: fit the limit of one experiment's deepest trained networks (docs/maths.md §4),
and draw the figures of the fit."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.limits import write_fit  # noqa: E402
from resnet_scaling.plots import limits as figures  # noqa: E402
from resnet_scaling.plots import png_outputs  # noqa: E402

torch.set_num_threads(snakemake.threads)
out = snakemake.output
summary = write_fit(
    list(snakemake.input.train),
    snakemake.input.dataset,
    snakemake.input.regimes,
    snakemake.input.exponents,
    snakemake.params.cfg,
    dict(out.items()),
    experiment=snakemake.wildcards.exp,
    seed=snakemake.params.seed,
    exponent_statistic=snakemake.params.exponent_statistic,
)
logging.info("summary: %s", summary)
figures.fit_figures(dict(out.items()), png_outputs(out))
logging.info("wrote %s", list(out))
