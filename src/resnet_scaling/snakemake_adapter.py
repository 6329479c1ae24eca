"""Every use of Snakemake's internals, in one place: the rest of the package never imports
snakemake, and the workflow (workflow/rules/common.smk) reaches past Snakemake's public
interface only through the functions here.

Snakemake is imported lazily, inside the functions, so that importing this module costs
nothing. :data:`INTERNALS` lists what the functions rely on that Snakemake does not promise
to keep (private methods of its persistence backends, attributes of its workflow, rule and
DAG objects, its config-file parsers), and :func:`internals_problems` checks each against the
installed Snakemake (tests/test_snakemake_adapter.py): an upgrade that changes one fails that
test with a sentence naming it, not a run halfway through.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

#: (module, class or function, attribute or None, the parameter names a callable must take, in
#: order, or None for a plain attribute) of every Snakemake internal used below.
INTERNALS: tuple[tuple[str, str, str | None, tuple[str, ...] | None], ...] = (
    ("snakemake.persistence.file", "FilePersistence", "_filter_incomplete_keys", ("self", "keys")),
    ("snakemake.persistence.file", "FilePersistence", "_get_recorded_starttime", ("self", "key")),
    ("snakemake.persistence.db", "DbPersistence", "_filter_incomplete_keys", ("self", "keys")),
    ("snakemake.persistence.db", "DbPersistence", "_get_recorded_starttime", ("self", "key")),
    ("snakemake.exceptions", "IncompleteFilesException", "__init__", ("self", "files")),
    ("snakemake.workflow", "Workflow", "overwrite_configfiles", None),
    ("snakemake.workflow", "Workflow", "configfiles", None),
    ("snakemake.workflow", "Workflow", "config_settings", None),
    ("snakemake.workflow", "Workflow", "exec_mode", None),
    ("snakemake.workflow", "Workflow", "overwrite_workdir", None),
    ("snakemake.workflow", "Workflow", "dag", None),
    ("snakemake.workflow", "Workflow", "dag_settings", None),
    ("snakemake.workflow", "Workflow", "persistence", None),
    ("snakemake.workflow", "Workflow", "rules", None),
    ("snakemake.settings.types", "ConfigSettings", "config_args", None),
    ("snakemake.settings.types", "DAGSettings", "force_incomplete", None),
    ("snakemake.dag", "DAG", "ignore_incomplete", None),
    ("snakemake.dag", "DAG", "forcefiles", None),
    ("snakemake.rules", "Rule", "script", None),
    ("snakemake.rules", "Rule", "notebook", None),
    ("snakemake.rules", "Rule", "basedir", None),
    ("snakemake.rules", "Rule", "set_params", ("self", "params", "kwparams")),
    ("snakemake.cli", "parse_config", None, ("entries",)),
    ("snakemake.common.configfile", "load_configfile", None, ("configpath",)),
)


def _has_attribute(cls: type, name: str) -> bool:
    """Whether instances of ``cls`` have ``name``: a class attribute or property, a dataclass
    field, or an attribute its code assigns (``self.name = ...``)."""
    if inspect.getattr_static(cls, name, None) is not None:
        return True
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return True
    for klass in cls.__mro__:
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if f"self.{name} =" in source or f"self.{name}:" in source:
            return True
    return False


def _problem(module: str, owner: str, attribute: str | None, params: tuple[str, ...] | None) -> str | None:
    where = f"{module}.{owner}" + (f".{attribute}" if attribute else "")
    try:
        if module == "snakemake.workflow":
            importlib.import_module("snakemake.api")  # snakemake.workflow is importable only after it
        target = getattr(importlib.import_module(module), owner)
    except (ImportError, AttributeError) as exc:
        return f"{where}: not found in the installed Snakemake ({exc})"
    if attribute is not None:
        if params is None:
            return None if _has_attribute(target, attribute) else f"{where}: no such attribute in the installed Snakemake"
        target = inspect.getattr_static(target, attribute, None)
        if target is None:
            return f"{where}: no such method in the installed Snakemake"
    found = tuple(inspect.signature(target).parameters)
    if found != params:
        return f"{where}: takes ({', '.join(found)}), this adapter calls it as ({', '.join(params)})"
    return None


def internals_problems(internals: Iterable = INTERNALS) -> list[str]:
    """One sentence for each Snakemake internal of ``internals`` that the installed Snakemake
    lacks or has with other parameters (empty when all are as this module expects)."""
    return [p for spec in internals if (p := _problem(*spec))]


# -- config files --------------------------------------------------------------------------


def load_configfile(path: str | Path) -> dict:
    """A config file as Snakemake reads it (YAML or JSON)."""
    from snakemake.common.configfile import load_configfile as load

    return load(str(path))


def parse_config_values(entries: Sequence[str]) -> dict:
    """``--config KEY=VALUE ...`` values as Snakemake parses them."""
    from snakemake.cli import parse_config

    return parse_config(list(entries))


# -- the workflow object of a Snakefile ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Invocation:
    """What the workflow needs to know about how Snakemake was called."""

    #: the config files given (``--configfile``), else those of the Snakefile's ``configfile:``
    configfiles: list[str]
    #: the ``--config KEY=VALUE`` values, as given
    config_values: list[str]
    #: whether this is the main process (not a job Snakemake started: cluster job, group job)
    main: bool
    #: whether ``--directory`` was given
    directory_given: bool


def invocation(workflow) -> Invocation:
    """How Snakemake was called, read from the ``workflow`` object of a Snakefile."""
    return Invocation(
        configfiles=list(workflow.overwrite_configfiles or workflow.configfiles),
        config_values=list(workflow.config_settings.config_args or []),
        main=workflow.exec_mode.name == "DEFAULT",
        directory_given=workflow.overwrite_workdir is not None,
    )


def attach_params(workflow, param: str, value_of: Callable[[str], str]) -> None:
    """Give every rule that runs a script or a notebook the param ``param``: ``value_of`` the
    path of that file. Called once all rules are defined."""
    for step in workflow.rules:
        source = step.script or step.notebook
        if source:
            path = step.basedir.join(source).get_path_or_uri(secret_free=True)
            step.set_params(**{param: value_of(path)})


def rerun_incomplete(workflow, started: float, folders: Sequence[str]) -> None:
    """Treat the incomplete markers (outputs of killed jobs) of files under ``folders`` as
    Snakemake treats those of the jobs it plans at the start: with ``--rerun-incomplete``
    they are rerun, otherwise refused, naming the files. Snakemake checks the markers of the
    jobs it plans before a checkpoint, not of those planned after it; this is called after.
    Markers younger than ``started`` (this invocation's own jobs) are left alone. The two
    calls are those of Snakemake's persistence backends (file and database)."""
    from snakemake.exceptions import IncompleteFilesException

    dag, persistence = workflow.dag, workflow.persistence
    if dag is None or dag.ignore_incomplete:
        return
    present = [os.path.join(folder, name) for top in folders for folder, _, names in os.walk(top) for name in names]
    marked = sorted(
        f
        for f in persistence._filter_incomplete_keys(present)
        if (persistence._get_recorded_starttime(f) or started) < started
    )
    if not marked:
        return
    if not workflow.dag_settings.force_incomplete:
        raise IncompleteFilesException(marked)
    dag.forcefiles.update(marked)
