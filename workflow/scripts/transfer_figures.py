"""Snakemake adapter: the figures of the transfer study."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling.transfer.figures import coord_check_figure, eta_star_figure, loss_lr_figure  # noqa: E402

tables = {name: pd.read_csv(path) for name, path in snakemake.input.items()}
out = snakemake.output
loss_lr_figure(tables["runs"], tables["transfer"], out.transfer_loss_lr_png, snakemake.params.seeds)
eta_star_figure(tables["optimum"], tables["transfer"], out.transfer_eta_star_png)
coord_check_figure(tables["coord_check"], tables["coord_slopes"], out.transfer_coord_check_png)
