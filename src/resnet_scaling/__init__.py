"""Depth-scaling limits of residual networks (see docs/maths.md for the equations)."""

__version__ = "0.1.0"
