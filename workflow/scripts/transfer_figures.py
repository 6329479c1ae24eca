"""Snakemake adapter: the figures of the transfer study."""

import pandas as pd

from resnet_scaling.transfer.figures import coord_check_figure, eta_star_figure, loss_lr_figure
from resnet_scaling.job import start_job

start_job(snakemake)
tables = {name: pd.read_csv(path) for name, path in snakemake.input.items()}
out = snakemake.output
loss_lr_figure(tables["runs"], tables["transfer"], out.transfer_loss_lr_png, snakemake.params.seeds)
eta_star_figure(tables["optimum"], tables["transfer"], out.transfer_eta_star_png)
coord_check_figure(tables["coord_check"], tables["coord_slopes"], out.transfer_coord_check_png)
