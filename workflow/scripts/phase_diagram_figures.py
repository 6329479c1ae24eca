"""Snakemake adapter: the training-side phase diagram and the anchor figure."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.plots.phase_diagram import anchor_figure, phase_diagram_figure  # noqa: E402
from resnet_scaling.scaling.tables import read_csv_checked  # noqa: E402

regimes = read_csv_checked(snakemake.input.regimes, ["cell", "activation", "regime", "exponent", "increment_ratio_slope"])
anchor = read_csv_checked(snakemake.input.anchor, ["experiment", "stage", "depth", "weights", "statistic", "value"])
slopes = read_csv_checked(snakemake.input.slopes, ["experiment", "stage", "weights", "statistic", "slope"])
phase_diagram_figure(regimes, snakemake.output.diagram)
anchor_figure(anchor, slopes, snakemake.output.anchor)
