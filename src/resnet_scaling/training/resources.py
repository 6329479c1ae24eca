"""Memory requests of the analysis jobs whose size grows with depth, from measured peaks.

A cluster kills a job that exceeds its request and a workstation run with ``--resources
mem_mb=…`` schedules by it, so each request must cover the job's peak without asking for
many times more. Peaks are measured on CPU (benchmark files, ``max_rss``) at the default
and the paper scale; each model is linear in seeds × deepest depth with a term per layer
that grows with the width d (weights, smoothed coefficients) and, for the backward
comparison, with the number of inputs (forward and adjoint paths).
"""

from __future__ import annotations


def fbsde_trained_mem_mb(seeds: int, max_depth: int, width: int, n_inputs: int) -> int:
    """MB for the comparison of one experiment's networks with their backward limits
    (one depth in memory at a time). Measured: 7375 MB at S = 8, L = 9100, d = 10 and
    11279 MB at d = 25 (32 inputs); 1186 MB at most at S = 4, L = 1024."""
    per_seed_layer = 3200 * n_inputs + 110 * width * width  # bytes
    return int(1000 + seeds * max_depth * per_seed_layer / 1e6)


def limits_fit_mem_mb(seeds: int, max_depth: int, width: int) -> int:
    """MB for fitting one experiment's limit to its deepest networks. Measured: 3917 MB at
    S = 8, L = 9100, d = 10 and 9235 MB at d = 25; 1181 MB at most at S = 4, L = 1024."""
    per_seed_layer = 30e3 + 160 * width * width  # bytes
    return int(1200 + seeds * max_depth * per_seed_layer / 1e6)
