"""Scaling exponents and regimes of networks trained elsewhere (``resnet-scaling analyse``).

A declarative map (:mod:`.maps`) says which tensors of a checkpoint (:mod:`.readers`) play
A_k, b_k and δ_k; :mod:`.networks` turns them into the paper's layer sequences and
:mod:`.report` runs the workflow's own statistics, exponent fits, regime rule, figures and
summary on them (docs/maths.md §3).
"""

from .maps import AnalyseError, load_map
from .report import analyse

__all__ = ["AnalyseError", "analyse", "load_map"]
