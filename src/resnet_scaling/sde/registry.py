"""Every scheme by name; an unknown name is refused with the list of choices."""

from __future__ import annotations

from .ito import ITO_ADJOINT, ITO_EULER_MARUYAMA
from .schemes import EULER, EULER_MARUYAMA, RK4, Scheme

SCHEMES: dict[str, Scheme] = {s.name: s for s in (RK4, EULER, EULER_MARUYAMA, ITO_EULER_MARUYAMA, ITO_ADJOINT)}


def get_scheme(name: str, solves: str | None = None) -> Scheme:
    """The scheme called ``name`` (restricted to those for the equation kind ``solves``)."""
    choices = sorted(n for n, s in SCHEMES.items() if solves is None or s.solves == solves)
    if name not in choices:
        kind = f" for {solves}" if solves else ""
        raise ValueError(f"unknown method {name!r}{kind}; choose one of {', '.join(choices)}")
    return SCHEMES[name]
