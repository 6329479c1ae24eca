"""Snakemake adapter: weight entries, norms and weight paths W^A_L(t) of one experiment: the table
and its figure."""

import logging
import sys

from resnet_scaling.io import job_log

sys.stderr = job_log(snakemake.log[0], "a")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")


from resnet_scaling.scaling.exponents import exponents_of  # noqa: E402
from resnet_scaling.io import write_csv  # noqa: E402
from resnet_scaling.plots import scaling as figures  # noqa: E402
from resnet_scaling.scaling.tables import read_exponents, read_primary_population, read_table  # noqa: E402
from resnet_scaling.scaling.weights import load_training, paths_table  # noqa: E402

p = snakemake.params
# the networks of the primary verdict (converged where the networks split), as the exponents used
population = read_primary_population(snakemake.input.regimes, snakemake.wildcards.exp) or p.include_status
table = paths_table(
    [load_training(path) for path in snakemake.input.train],
    exponents_of(read_exponents(snakemake.input.exponents), snakemake.wildcards.exp, p.exponent_statistic),
    n_entries=p.n_entries,
    n_depths=p.n_depths,
    include_status=population,
)
out = snakemake.output
write_csv(out.table, table)
figures.paths_figure(read_table(out.table), out.png)  # from the file, as any later reader sees it
logging.info("wrote %s", list(out))
