"""Snakemake adapter: the regime of every cell of the phase diagram, by the scaling stage's rule."""

import logging
from pathlib import Path

from resnet_scaling.scaling.exponents import FitSettings
from resnet_scaling.scaling.regime_rule import RegimeThresholds
from resnet_scaling.io import write_csv
from resnet_scaling.phase_diagram.study import phase_diagram
from resnet_scaling.job import start_job

start_job(snakemake, log_mode="a")
settings = FitSettings.from_config(
    {"fit": snakemake.params.fit, "bootstrap": snakemake.params.bootstrap, "include_status": snakemake.params.include_status}
)
regimes, exponents = phase_diagram(
    {name: sorted(Path(folder).glob("depth_*.npz")) for name, folder in zip(snakemake.params.cells, snakemake.input)},
    snakemake.params.cells,
    settings,
    RegimeThresholds.from_config(snakemake.params.regime),
    snakemake.params.detrend_window,
)
write_csv(snakemake.output.regimes, regimes)
write_csv(snakemake.output.exponents, exponents)
for _, r in regimes.iterrows():
    logging.info("%s: %s (support %.2f), exponent %.2f, increment-ratio slope %.2f", r["cell"], r["regime"],
                 r["support"], r["exponent"], r["increment_ratio_slope"])
