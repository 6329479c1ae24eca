"""Snakemake adapter: exponents, regimes and the scorecard of the convolutional experiments."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.cnn.scaling import fit_all, read_conv_statistics, scorecard_markdown  # noqa: E402
from resnet_scaling.io import write_csv, write_text  # noqa: E402

cfg = snakemake.params.scaling
exponents, regimes = fit_all([read_conv_statistics(p) for p in snakemake.input], cfg, snakemake.params.experiments)
write_csv(snakemake.output.exponents, exponents)
write_csv(snakemake.output.regimes, regimes)
write_text(snakemake.output.scorecard, scorecard_markdown(exponents, regimes, cfg["scorecard"]["rounding"]))
for _, r in regimes.iterrows():
    logging.info("%s: %s (support %.2f), exponent of %s %.3f %s", r["experiment"], r["regime"], r["support"],
                 r["quantity"], r["exponent"], r["note"])
