"""Snakemake adapter: the training-side phase diagram and the anchor figure."""

from resnet_scaling.plots.phase_diagram import anchor_figure, phase_diagram_figure
from resnet_scaling.scaling.tables import read_csv_checked
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
regimes = read_csv_checked(snakemake.input.regimes, ["cell", "activation", "regime", "exponent", "increment_ratio_slope"])
anchor = read_csv_checked(snakemake.input.anchor, ["experiment", "stage", "depth", "weights", "statistic", "value"])
slopes = read_csv_checked(snakemake.input.slopes, ["experiment", "stage", "weights", "statistic", "slope"])
phase_diagram_figure(regimes, snakemake.output.diagram)
anchor_figure(anchor, slopes, snakemake.output.anchor)
