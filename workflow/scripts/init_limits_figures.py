"""Snakemake adapter: every init_limits figure from its tidy tables (one plotting function each)."""

import logging

from resnet_scaling.plots import init as figures
from resnet_scaling.scaling.tables import read_table
from resnet_scaling.job import start_job

start_job(snakemake)
t = {name: read_table(path) for name, path in snakemake.input.items()}
out = snakemake.output
figures.law_convergence_figure(t["w1"], t["quantiles"], "state", out.diffusion_law)
figures.law_convergence_figure(t["w1"], t["quantiles"], "jacobian_norm", out.gradient_law)
figures.gbm_figure(t["gbm_moments"], t["gbm_density"], out.gbm)
figures.correlation_figure(t["correlation"], out.correlation)
figures.relative_change_figure(t["relative_change"], out.relative_change)
figures.phase_diagram_figure(t["phase_cells"], t["critical_line"], out.phase_diagram)
figures.kernels_figure(t["kernel_errors"], t["kernel_paths"], out.kernels)
logging.info("wrote %d figures (PDF and PNG)", 7)
