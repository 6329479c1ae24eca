"""Snakemake adapter for the scaling figures: the rule's name picks the plotting function."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "a", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

import pandas as pd  # noqa: E402

from resnet_scaling import tables  # noqa: E402
from resnet_scaling.exponents import RegimeThresholds  # noqa: E402
from resnet_scaling.plots import scaling as figures  # noqa: E402


def read(paths, reader=tables.read_table):
    """One table from one or several files, each checked by ``reader``."""
    return pd.concat([reader(p) for p in ([paths] if isinstance(paths, str) else paths)], ignore_index=True)


inp, params, out = snakemake.input, snakemake.params, snakemake.output.png
rule = snakemake.rule
if rule == "scaling_figure_max_norm":
    figures.max_norm_figure(read(inp.statistics, tables.read_statistics), tables.read_exponents(inp.exponents), out,
                            params.include_status)
elif rule == "scaling_figure_hypothesis":
    figures.hypothesis_figure(read(inp.statistics, tables.read_statistics), tables.read_exponents(inp.exponents), out,
                              params.include_status)
elif rule == "scaling_figure_loss":
    figures.loss_figure(read(inp.training, tables.read_training), params.epsilons, out)
elif rule == "scaling_figure_summary":
    figures.summary_figure(tables.read_regimes(inp.regimes), RegimeThresholds.from_config(params.regime), out)
elif rule == "scaling_figure_paths":
    figures.paths_figure(read(inp.paths), out)
elif rule == "scaling_figure_decomposition":
    figures.decomposition_figure(read(inp.decomposition), read(inp.losses), out, params.epsilon)
else:
    raise ValueError(f"scaling_figure.py has no figure for rule {rule!r}")
logging.info("wrote %s", out)
