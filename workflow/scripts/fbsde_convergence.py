"""Snakemake adapter: the synthetic convergence study of the backpropagation limit (docs/maths.md §5),
and its figures."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.fbsde import write_adjoint_convergence  # noqa: E402
from resnet_scaling.plots import fbsde as figures  # noqa: E402
from resnet_scaling.plots import png_outputs  # noqa: E402

torch.set_num_threads(snakemake.threads)
out = snakemake.output
cfg = snakemake.params.cfg
res = write_adjoint_convergence(cfg, dict(out.items()))
logging.info("slopes (RMS over paths):\n%s", res.slopes[res.slopes["statistic"] == "rms"].to_string(index=False))
figures.synthetic_figures(dict(out.items()), png_outputs(out), cfg["figure_case"])
logging.info("wrote %s", list(out))
