"""Snakemake adapter: our exponents and regimes beside the reference values (Markdown and HTML)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "a", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from resnet_scaling.io import write_text  # noqa: E402
from resnet_scaling.scorecard import render_html, render_markdown, score  # noqa: E402
from resnet_scaling.tables import read_exponents, read_regimes, read_robustness  # noqa: E402

exponents = read_exponents(snakemake.input.exponents, snakemake.params.experiments)
regimes = read_regimes(snakemake.input.regimes, snakemake.params.experiments)
robustness = read_robustness(snakemake.input.robustness)
scores = score(exponents, regimes, rounding=snakemake.params.rounding, robustness=robustness)
context = (tuple(snakemake.params.include_status), robustness)
write_text(snakemake.output.markdown, render_markdown(scores, exponents, regimes, *context))
write_text(snakemake.output.html, render_html(scores, exponents, regimes, *context))
logging.info("%d of %d scorecard rows agree", int(scores["agree"].sum()), len(scores))
