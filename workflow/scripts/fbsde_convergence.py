"""Snakemake adapter: the synthetic convergence study of the backpropagation limit (docs/maths.md §5),
and its figures."""

import logging

from resnet_scaling.fbsde import write_adjoint_convergence
from resnet_scaling.plots import fbsde as figures
from resnet_scaling.plots import png_outputs
from resnet_scaling.job import start_job

start_job(snakemake)
out = snakemake.output
cfg = snakemake.params.cfg
res = write_adjoint_convergence(cfg, dict(out.items()))
logging.info("slopes (RMS over paths):\n%s", res.slopes[res.slopes["statistic"] == "rms"].to_string(index=False))
figures.synthetic_figures(dict(out.items()), png_outputs(out), cfg["figure_case"])
logging.info("wrote %s", list(out))
