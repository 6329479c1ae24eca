"""Outputs of the fbsde rules, written atomically."""

from __future__ import annotations

from typing import Sequence

from ..config import section_settings
from ..io import write_csv, write_npz
from .synthetic import ConvergenceResult, check_cases, convergence_study
from .trained import trained_study


def write_adjoint_convergence(cfg: dict, out: dict, *, progress: bool = True) -> ConvergenceResult:
    """Run the synthetic convergence study of ``cfg`` (the ``fbsde.convergence`` config
    section, schema defaults filling what it omits) and write ``out['errors']``, ``out['slopes']``, ``out['paths']`` (CSV) and
    ``out['field']`` (npz)."""
    cfg = section_settings("fbsde.convergence", cfg)
    check_cases(cfg["cases"], cfg["figure_case"], cfg["figure_depths"])
    res = convergence_study(
        cfg["cases"],
        int(cfg["seed"]),
        int(cfg["dim"]),
        int(cfg["n_inputs"]),
        figure_case=cfg["figure_case"],
        figure_depths=[int(L) for L in cfg["figure_depths"]],
        progress=progress,
    )
    write_csv(out["errors"], res.errors)
    write_csv(out["slopes"], res.slopes)
    write_csv(out["paths"], res.paths)
    write_npz(out["field"], metadata={"case": cfg["figure_case"]}, **res.field)
    return res


def write_trained(train_paths: Sequence[str], dataset_path: str, cfg: dict, out: dict, *, progress: bool = True) -> dict:
    """Run :func:`trained_study` for one experiment and write ``out['table']``,
    ``out['slopes']``, ``out['paths']`` (CSV) and ``out['field']`` (npz)."""
    res = trained_study(train_paths, dataset_path, cfg, progress=progress)
    write_csv(out["table"], res["table"])
    write_csv(out["slopes"], res["slopes"])
    write_csv(out["paths"], res["paths"])
    write_npz(out["field"], metadata={"limit": res["limit"]}, **res["field"])
    return res
