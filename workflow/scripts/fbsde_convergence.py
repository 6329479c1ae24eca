"""Snakemake adapter: the synthetic convergence study of the backpropagation limit (docs/maths.md §5)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import torch  # noqa: E402

from resnet_scaling.fbsde import write_adjoint_convergence  # noqa: E402

torch.set_num_threads(snakemake.threads)
res = write_adjoint_convergence(snakemake.params.cfg, dict(snakemake.output.items()))
logging.info("slopes (RMS over paths):\n%s", res.slopes[res.slopes["statistic"] == "rms"].to_string(index=False))
