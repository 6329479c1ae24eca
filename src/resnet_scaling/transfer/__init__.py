"""The learning-rate transfer study (workflow/rules/transfer.smk, opt-in; docs/maths.md §9): which
residual scaling lets the optimal learning rate transfer across depth, and which limit the trained
weights then have.

Inputs: the ``transfer`` section of the config and the datasets it names (``results/data/``).
Outputs: ``results/transfer/`` (one folder per cell with its runs, the networks at the grid's
best rate and the coordinate check; ``runs.csv``, ``optimum.csv``, ``transfer.csv``,
``coord_check.csv``, ``coord_slopes.csv``, ``exponents.csv``, ``pathwise.csv``, ``cost.csv``) and
the figures ``figures/transfer_*``. Training is :mod:`..training`'s; the regime and the pathwise
verdict at η* are :mod:`..scaling`'s and :mod:`..limits`'.

- :mod:`.study`: the cells, their check (a parametrisation the trainer cannot run is refused,
  naming the key) and their training;
- :mod:`.optimum`: η*(L), its seed-bootstrap interval, the slope of log η* on log L;
- :mod:`.analysis`: the tables; :mod:`.figures`: the figures.
"""

from .optimum import curve, eta_star, grid_optimum, transfer_fit, transfer_verdict
from .study import Cell, cell_name, cells, check_spec, lr_grid, settings, train_cell

__all__ = ["Cell", "cell_name", "cells", "check_spec", "curve", "eta_star", "grid_optimum", "lr_grid", "settings",
           "train_cell", "transfer_fit", "transfer_verdict"]
