"""Snakemake adapter: the tables of the transfer study from its trained cells."""

import logging
from pathlib import Path

from resnet_scaling.io import read_npz, write_csv, write_text
from resnet_scaling.transfer.analysis import analyse, cost_line
from resnet_scaling.transfer.study import Cell
from resnet_scaling.job import start_job

start_job(snakemake)
cells = {name: Cell.from_dict(spec) for name, spec in snakemake.params.cells.items()}
folders = {Path(folder).name: folder for folder in snakemake.input.cells}
data = {Path(path).stem: read_npz(path)[0] for path in snakemake.input.data}
tables = analyse(folders, cells, data, {"transfer": snakemake.params.transfer, "scaling": snakemake.params.scaling,
                                        "limits": snakemake.params.limits})
for name, table in tables.items():
    write_csv(snakemake.output[name], table)
line = cost_line(tables["cost"])
write_text(snakemake.output.cost_line, line + "\n")
logging.info(line)
