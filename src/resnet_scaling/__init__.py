"""Depth-scaling limits of residual networks (see MATH.md for the equations)."""

__version__ = "0.1.0"
