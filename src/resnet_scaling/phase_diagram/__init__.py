"""The training-side phase diagram (workflow/rules/phase_diagram.smk, opt-in): which training choices
give which regime (docs/maths.md §8).

Inputs: the ``regimes`` section of the config (the phase diagram's settings). Outputs: ``results/regimes/`` (one trained
folder per cell, ``phase_diagram.csv``, ``exponents.csv``, the anchor's statistics and
slopes); the cells are trained by :mod:`..training` and classified by :mod:`..scaling`.

- :mod:`.study`: the cells, their training and their classification, and the anchor.
"""
