"""Snakemake adapter: our exponents and regimes beside the reference values (Markdown and HTML)."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "a", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling.io import write_text  # noqa: E402
from resnet_scaling.scorecard import render_html, render_markdown, score  # noqa: E402

exponents = pd.read_csv(snakemake.input.exponents)
regimes = pd.read_csv(snakemake.input.regimes)
scores = score(exponents, regimes, rounding=snakemake.params.rounding)
write_text(snakemake.output.markdown, render_markdown(scores, exponents, regimes))
write_text(snakemake.output.html, render_html(scores, exponents, regimes))
logging.info("%d of %d scorecard rows agree", int(scores["agree"].sum()), len(scores))
