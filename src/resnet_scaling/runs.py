"""Where a run of the workflow writes: one folder per config, apart from the committed galleries.

A run started in the repository writes everything (results, figures, logs, benchmarks, its
``.snakemake`` metadata) under ``runs/<name>/``, where ``<name>`` is made of the stems of its
config files, joined by ``+`` (``config``, ``paper+fc_cpu``), plus a short hash of any
``--config`` values, which make it another config. Two configs therefore never share a file,
and the committed galleries (``figures/``, ``figures/paper/``, …) change only when a
gallery is exported on purpose (:mod:`resnet_scaling.gallery`, ``make gallery``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

#: The folder, inside the repository, that holds one folder per run.
RUNS = "runs"
#: Environment variable through which jobs started by Snakemake (on a cluster, in a group)
#: learn the folder their run writes to; they start where the run was started.
RUN_DIR_ENV = "RESNET_SCALING_RUN_DIR"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_name(configfiles: Sequence[str | Path], overrides: Sequence[str] | None, root: str | Path) -> str:
    """The folder name of a run: its config files' stems joined by ``+``.

    A config file outside ``root`` adds a hash of its absolute path to its stem (two files
    called ``config.yaml`` in different folders are different configs); the ``--config``
    values (``KEY=VALUE`` strings) add a hash of themselves, independent of their order.
    """
    root = Path(root).resolve()
    parts = []
    for file in configfiles:
        path = Path(file).resolve()
        parts.append(path.stem if path.is_relative_to(root) else f"{path.stem}-{_digest(str(path))}")
    if not parts:
        raise ValueError("a run needs at least one config file")
    if overrides:
        parts.append(_digest("\n".join(sorted(overrides))))
    return "+".join(parts)


def run_directory(configfiles: Sequence[str | Path], overrides: Sequence[str] | None, root: str | Path) -> Path:
    """``root/runs/<run_name>``: where a run started in ``root`` writes."""
    return Path(root).resolve() / RUNS / run_name(configfiles, overrides, root)


def _shown(path: str | Path, root: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def describe_run(configfiles: Sequence[str | Path], overrides: Sequence[str] | None, root: str | Path,
                 run_dir: str | Path) -> dict:
    """What the report's front page says of a run: its config files and ``--config`` values
    (paths relative to the repository where they lie inside it) and the folder it writes to."""
    root = Path(root).resolve()
    return {
        "configfiles": [_shown(f, root) for f in configfiles],
        "config_values": list(overrides or []),
        "directory": _shown(run_dir, root),
    }


def resolve_data_paths(config: dict, root: str | Path) -> None:
    """Make the relative ``path`` of every dataset absolute, relative to ``root`` (the
    repository): the data a run reads do not depend on the folder the run writes to."""
    for spec in (config.get("datasets") or {}).values():
        if isinstance(spec, dict) and isinstance(spec.get("path"), str) and not Path(spec["path"]).is_absolute():
            spec["path"] = str(Path(root).resolve() / spec["path"])
