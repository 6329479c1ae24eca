"""Where a run of the workflow writes: one folder per config, apart from the committed galleries.

A run started in the repository writes everything (results, figures, logs, benchmarks, its
``.snakemake`` metadata) under ``runs/<name>-<digest>/``: ``<name>`` joins the stems of its
config files with ``+`` (``config``, ``paper+fc_cpu``), ``<digest>`` is 8 hex digits of the
sha256 of the merged config values (the files in order, then any ``--config`` values; the
order of keys means nothing but the experiments'). Two configs that differ in any value
therefore never share a folder, whatever their files are called, and the same values always
find theirs: ``python -m resnet_scaling.runs CONFIGFILE... [--config KEY=VALUE...]`` prints
it. The committed galleries (``figures/``, ``figures/paper/``, …) change only when a gallery
is exported on purpose (:mod:`resnet_scaling.gallery`, ``make gallery``), and a run pointed at
the repository itself or at a gallery (``--directory``) is refused before any job runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

#: The folder, inside the repository, that holds one folder per run.
RUNS = "runs"
#: Environment variable through which jobs started by Snakemake (on a cluster, in a group)
#: learn the folder their run writes to; they start where the run was started.
RUN_DIR_ENV = "RESNET_SCALING_RUN_DIR"
#: The folder, inside the repository, under which the committed galleries lie.
GALLERIES = "figures"


class RunDirectoryError(ValueError):
    """A folder a run must not write to; the message names it and what to do."""


#: glibc's allocator settings for the jobs (docs/costs.md, "The allocator"): arrays up to 64 MiB
#: come from the heap and free memory stays there up to 256 MiB, so the large temporaries of a
#: deep network's analysis reuse pages instead of being mapped and faulted in anew each time
#: (by default every array above 32 MiB is; benchmarks/analysis_allocator.py measures the
#: trained backward comparison 1.1–1.25× slower so). The caller's own settings win.
ALLOCATOR_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}


def script_environment(src: str | Path, interpreter: str | Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The ``PYTHONPATH``, ``PATH`` and allocator settings the workflow's jobs run with.

    Scripts run in their own Python processes (locally or inside cluster jobs): the package's
    ``src`` folder leads ``PYTHONPATH``, so they import it without an install. The folder of
    the ``interpreter`` running Snakemake leads ``PATH``, so the tools beside it (jupyter for
    the notebook rules) are found even when snakemake is called by its full path from outside
    an activated environment. What the caller had in either variable follows. The
    :data:`ALLOCATOR_ENVIRONMENT` is added where the caller has not set those variables.
    """
    def leading(first: str, variable: str) -> str:
        return os.pathsep.join(p for p in (first, environ.get(variable)) if p)

    allocator = {key: value for key, value in ALLOCATOR_ENVIRONMENT.items() if key not in environ}
    return {"PYTHONPATH": leading(str(src), "PYTHONPATH"), "PATH": leading(str(Path(interpreter).parent), "PATH"),
            **allocator}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def merged_config(configfiles: Sequence[str | Path], overrides: Sequence[str] | None = None) -> dict:
    """The config Snakemake makes of ``--configfile FILES --config OVERRIDES``: each file merged
    into the one before it key by key, then the ``KEY=VALUE`` values (Snakemake's own parsers)."""
    from .config import merge_config
    from .snakemake_adapter import load_configfile, parse_config_values

    config: dict = {}
    for file in configfiles:
        merge_config(config, load_configfile(file))
    if overrides:
        merge_config(config, parse_config_values(overrides))
    return config


def config_digest(config: dict) -> str:
    """8 hex digits of the sha256 of the config's values (canonical order: provenance.canonical_config)."""
    from .provenance import canonical_config

    return _digest(json.dumps(canonical_config(config), default=str))


def run_name(configfiles: Sequence[str | Path], overrides: Sequence[str] | None, config: dict | None = None) -> str:
    """The folder name of a run: its config files' stems joined by ``+``, then ``-`` and the
    digest of the merged config values (``config``, the merged config Snakemake read, or the
    files and ``--config`` values merged here)."""
    if not configfiles:
        raise ValueError("a run needs at least one config file")
    values = merged_config(configfiles, overrides) if config is None else config
    return "+".join(Path(file).stem for file in configfiles) + "-" + config_digest(values)


def run_directory(configfiles: Sequence[str | Path], overrides: Sequence[str] | None, root: str | Path,
                  config: dict | None = None) -> Path:
    """``root/runs/<run_name>``: where a run started in ``root`` writes."""
    return Path(root).resolve() / RUNS / run_name(configfiles, overrides, config)


def chosen_run_directory(configfiles: Sequence[str | Path], overrides: Sequence[str] | None, root: str | Path, *,
                         main: bool, directory_given: bool, cwd: str | Path, environ: dict) -> Path:
    """The folder a Snakemake process of the workflow writes to: a job Snakemake started
    (``main`` false) follows its run (:data:`RUN_DIR_ENV`); a run started in the repository
    ``root`` without ``--directory`` goes to :func:`run_directory`; any other stays in ``cwd``."""
    if not main and RUN_DIR_ENV in environ:
        return Path(environ[RUN_DIR_ENV]).resolve()
    if not directory_given and Path(cwd).resolve() == Path(root).resolve():
        return run_directory(configfiles, overrides, root)
    return Path(cwd).resolve()


#: The record a committed gallery holds (:data:`resnet_scaling.pedigree.GALLERY_RECORD`).
GALLERY_RECORD = "provenance.json"


def check_run_directory(run_dir: str | Path, root: str | Path) -> None:
    """Refuse a run folder that is the repository itself or a committed gallery (``figures/``
    and every folder below it): a run there would overwrite committed files."""
    run_dir, root = Path(run_dir).resolve(), Path(root).resolve()
    galleries = root / GALLERIES
    # a checkout (git) or a copy holding committed galleries; a bare copy of the workflow whose
    # figures/ are only a run's outputs (no gallery record) is a run folder like any other
    if not ((root / ".git").exists() or (galleries / GALLERY_RECORD).exists()):
        return
    if run_dir == root:
        raise RunDirectoryError(
            f"refusing to run in {run_dir}: it is the repository itself, whose committed files a run would "
            f"overwrite; leave out --directory (the run then writes to {RUNS}/<config>-<digest>/) or name a "
            "folder outside the repository")
    if run_dir == galleries or run_dir.is_relative_to(galleries):
        raise RunDirectoryError(
            f"refusing to run in {run_dir}: it is a committed gallery, which changes only through "
            f"`make gallery`; leave out --directory (the run then writes to {RUNS}/<config>-<digest>/) or name "
            "a folder outside the repository")


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


def main(argv: Sequence[str] | None = None) -> int:
    """Print the folder a run of these config files writes to: ``python -m resnet_scaling.runs``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("configfiles", nargs="+", help="the --configfile files, in order")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="the --config values")
    parser.add_argument("--root", default=Path(__file__).resolve().parents[2],
                        help="the repository (default: the one this package lies in)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    print(run_directory(args.configfiles, args.config, root).relative_to(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
