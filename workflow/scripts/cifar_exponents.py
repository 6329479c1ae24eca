"""Snakemake adapter: exponents, regimes and the scorecard of the convolutional experiments."""

import logging

from resnet_scaling.cnn.scaling import fit_all, read_conv_statistics, scorecard_markdown
from resnet_scaling.io import write_csv, write_text
from resnet_scaling.job import start_job

start_job(snakemake)
cfg = snakemake.params.scaling
tables = [read_conv_statistics(p, n) for p, n in zip(snakemake.input, snakemake.params.networks, strict=True)]
exponents, regimes = fit_all(tables, cfg, snakemake.params.experiments)
write_csv(snakemake.output.exponents, exponents)
write_csv(snakemake.output.regimes, regimes)
write_text(snakemake.output.scorecard, scorecard_markdown(exponents, regimes, cfg["scorecard"]["rounding"]))
for _, r in regimes.iterrows():
    logging.info("%s: %s (support %.2f), exponent of %s %.3f %s", r["experiment"], r["regime"], r["support"],
                 r["quantity"], r["exponent"], r["note"])
