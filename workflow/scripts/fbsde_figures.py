"""Snakemake adapter for the backpropagation-limit figures: the rule's name picks the figure set."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.plots import fbsde as figures  # noqa: E402

if snakemake.rule == "fbsde_figures_synthetic":
    figures.synthetic_figures(dict(snakemake.input.items()), dict(snakemake.output.items()), snakemake.params.case)
elif snakemake.rule == "fbsde_figures_trained":
    figures.trained_figures(dict(snakemake.input.items()), dict(snakemake.output.items()), snakemake.wildcards.exp)
else:
    raise ValueError(f"fbsde_figures.py has no figures for rule {snakemake.rule!r}")
logging.info("wrote %s", list(snakemake.output))
