"""Residual networks at initialisation: diffusion limits in law and exact identities (docs/maths.md §6).

The init_limits stage (workflow/rules/init_limits.smk). Input: the ``init_limits`` section of
the config (no trained network). Outputs: ``results/init/`` (one table per study and the note).

No training is involved; every network is drawn fresh from its initial law. One module per study:

- :mod:`.shallow`: the shallow block and its diffusion in law, with the Jacobian (1 & 3);
- :mod:`.gbm`: geometric Brownian motion, d = 1 (1);
- :mod:`.correlation`: the output correlation of two inputs against depth (2);
- :mod:`.relative_change`: Marion et al.'s relative change, i.i.d. and smooth weights (4);
- :mod:`.phase_diagram`: fractional-Gaussian-noise weights, the critical β (5), with :mod:`.fgn`;
- :mod:`.kernels`: the doubly infinite (width and depth) kernel limit;
- :mod:`.note`: every comparison with theory, in numbers.
"""

from .correlation import correlation_table, simulate_correlation
from .fgn import fgn, fgn_autocovariance
from .gbm import gbm_exact_moments, gbm_limit_moments, gbm_tables
from .note import note_markdown, summarise
from .phase_diagram import critical_line, fgn_weights, phase_diagram, phase_diagram_table
from .relative_change import (
    EXPLOSION_THRESHOLD,
    SmoothWeights,
    iid_weights,
    marion_network,
    relative_change_identity,
    relative_change_table,
)
from .shallow import WEAK_ORDER, diffusion_law_tables, shallow_step, simulate_shallow

__all__ = [
    "EXPLOSION_THRESHOLD", "WEAK_ORDER", "SmoothWeights", "correlation_table", "critical_line", "diffusion_law_tables",
    "fgn", "fgn_autocovariance", "fgn_weights", "gbm_exact_moments", "gbm_limit_moments", "gbm_tables", "iid_weights",
    "marion_network", "note_markdown", "phase_diagram", "phase_diagram_table", "relative_change_identity",
    "relative_change_table", "shallow_step", "simulate_correlation", "simulate_shallow", "summarise",
]
