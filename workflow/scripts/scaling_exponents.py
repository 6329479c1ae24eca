"""Snakemake adapter: exponents with seed-bootstrap intervals and the regime of every experiment."""

import logging

from resnet_scaling.scaling.exponents import FitSettings, fit_all
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.io import write_csv
from resnet_scaling.scaling.tables import read_statistics
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
settings = FitSettings.from_config(
    {"fit": snakemake.params.fit, "bootstrap": snakemake.params.bootstrap, "include_status": snakemake.params.include_status,
     "population": snakemake.params.population}
)
exponents, regimes = fit_all(
    [read_statistics(path, networks) for path, networks in zip(snakemake.input, snakemake.params.networks, strict=True)],
    settings,
    RegimeThresholds.from_config(snakemake.params.regime),
)
write_csv(snakemake.output.exponents, exponents)
write_csv(snakemake.output.regimes, regimes)
for _, r in regimes.iterrows():
    logging.info("%s: %s (support %.2f), exponent %.3f [%.3f, %.3f] %s", r["experiment"], r["regime"],
                 r["support"], r["exponent"], r["exponent_ci_low"], r["exponent_ci_high"], r["note"])
