"""Snakemake adapter: weight entries, norms and weight paths W^A_L(t) of one experiment: the table
and its figure."""

import logging

from resnet_scaling.scaling.exponents import exponents_of
from resnet_scaling.io import write_csv
from resnet_scaling.plots import scaling as figures
from resnet_scaling.scaling.tables import read_exponents, read_primary_population, read_table
from resnet_scaling.scaling.paths import drawn_networks
from resnet_scaling.scaling.weights import paths_table
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
p = snakemake.params
# the networks of the primary verdict (converged where the networks split), as the exponents used
population = read_primary_population(snakemake.input.regimes, snakemake.wildcards.exp) or p.include_status
table = paths_table(
    drawn_networks(snakemake.input.train, population),
    exponents_of(read_exponents(snakemake.input.exponents), snakemake.wildcards.exp, p.exponent_statistic),
    n_entries=p.n_entries,
    n_depths=p.n_depths,
    include_status=population,
)
out = snakemake.output
write_csv(out.table, table)
figures.paths_figure(read_table(out.table), out.png)  # from the file, as any later reader sees it
logging.info("wrote %s", list(out))
