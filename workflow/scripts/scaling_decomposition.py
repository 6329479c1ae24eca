"""Snakemake adapter: trend/noise decomposition of one experiment's deepest networks and the
training loss of the trend-only (denoised) weights; the tables and their figure."""

import logging

from resnet_scaling.scaling.exponents import exponents_of
from resnet_scaling.io import read_npz, write_csv
from resnet_scaling.plots import scaling as figures
from resnet_scaling.scaling.tables import read_exponents, read_primary_population, read_table
from resnet_scaling.scaling.decomposition import decompose
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
p = snakemake.params
# the networks of the primary verdict (converged where the networks split), as the exponents used
population = read_primary_population(snakemake.input.regimes, snakemake.wildcards.exp) or p.include_status
data, _ = read_npz(snakemake.input.dataset)
decomposition, losses = decompose(
    list(snakemake.input.train),
    exponents_of(read_exponents(snakemake.input.exponents), snakemake.wildcards.exp, p.exponent_statistic),
    (data["x_train"], data["y_train"]),
    n_cells=p.n_cells,
    show_depths=p.show_depths,
    n_entries=p.n_entries,
    include_status=population,
)
out = snakemake.output
write_csv(out.decomposition, decomposition)
write_csv(out.losses, losses)
for depth, part in losses.groupby("depth"):
    logging.info("L=%d: median loss trained %.3g, trend only %.3g", depth,
                 part["loss_trained"].median(), part["loss_denoised"].median())
figures.decomposition_figure(read_table(out.decomposition), read_table(out.losses), out.png, p.epsilon)
logging.info("wrote %s", list(out))
