"""What made a run and what made a gallery: the record a run keeps of itself (``run.json``)
and the checks a gallery export makes against it before writing anything.

A run records, in ``run.json`` at the top of its folder (written by the workflow's
``onstart`` and ``onsuccess`` handlers, ``workflow/rules/common.smk``):

- its config: the config files, the ``--config`` values and a digest of the resolved config
  values (:func:`config_digest`: key order and the repository's location do not enter it);
- the code of its last invocation: the git commit of the checkout (and whether its code was
  modified) and the code digest of every rule (:func:`resnet_scaling.provenance.code_digest`,
  the ``code`` param of every rule that runs a script or a notebook);
- per final target its invocation built to the end (the default target ``all``): the files
  that target lists, recorded only once the invocation has succeeded; ``finished`` is empty
  while an invocation runs and stays empty when it is killed or fails.

What made each output is Snakemake's own record of its job (``.snakemake/metadata/``): the
rule and the params, among them the ``code`` digest. :func:`check_run` holds a run to one
config and one code version with these; a gallery's ``provenance.json``
(:func:`gallery_provenance`) keeps what it found.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Sequence

from .provenance import canonical_config

#: The run's record of itself, at the top of its folder.
RUN_RECORD = "run.json"
#: A gallery's record of the run that made it.
GALLERY_RECORD = "provenance.json"
#: The final target whose outputs a gallery shows.
FINAL_TARGET = "all"
#: How a code digest (``provenance.code_digest``) reads among Snakemake's recorded params (reprs).
_CODE_PARAM = re.compile(r"^'[0-9a-f]{16}'$")


class Refused(ValueError):
    """An export refused before anything was written; the message is one sentence."""


# -- what the workflow records ------------------------------------------------------------


def config_digest(config: dict, root: str | Path) -> str:
    """Digest of a run's resolved config values: their canonical form
    (:func:`resnet_scaling.provenance.canonical_config`), without the run's description and
    with paths inside the repository ``root`` written relative to it (two checkouts of the
    same config give the same digest)."""
    prefix = str(Path(root).resolve()) + os.sep

    def relative(value):
        if isinstance(value, dict):
            return {k: relative(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [relative(v) for v in value]
        if isinstance(value, str) and value.startswith(prefix):
            return value[len(prefix):]
        return value

    values = relative(canonical_config({k: v for k, v in config.items() if k != "run"}))
    text = json.dumps(values, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_state(root: str | Path) -> tuple[str, bool]:
    """(commit of the checkout at ``root``, whether its tracked code — ``src/``, ``workflow/``,
    ``notebooks/``, the Snakefile — differs from it); ('unknown', False) outside git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown", False
        status = git("status", "--porcelain", "--untracked-files=no", "--", "src", "workflow", "notebooks",
                     "Snakefile")
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return head.stdout.strip(), bool(status.stdout.strip())


def _write_json(path: Path, record: dict) -> None:
    from .io import write_text

    write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_run_record(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / RUN_RECORD
    return json.loads(path.read_text()) if path.exists() else None


def record_run_start(run_dir: str | Path, run: dict, digest: str, code: dict[str, str], root: str | Path) -> None:
    """An invocation starts its jobs: record its config and code, and that it has not finished.
    Targets finished by earlier invocations of the same config values are kept."""
    previous = read_run_record(run_dir) or {}
    commit, dirty = git_state(root)
    targets = previous.get("targets", {}) if previous.get("config_digest") == digest else {}
    _write_json(Path(run_dir) / RUN_RECORD, {
        "configfiles": list(run["configfiles"]), "config_values": list(run["config_values"]),
        "config_digest": digest, "commit": commit, "dirty": dirty, "code": dict(sorted(code.items())),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None, "targets": targets})


def record_run_success(run_dir: str | Path, targets: dict[str, Sequence[str]]) -> None:
    """The invocation built its final targets: record the files each lists, and the time."""
    record = read_run_record(run_dir)
    if record is None:  # an invocation that started no job records nothing
        return
    record["targets"] = {**record.get("targets", {}), **{k: sorted(map(str, v)) for k, v in targets.items()}}
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_json(Path(run_dir) / RUN_RECORD, record)


# -- Snakemake's records of the jobs -------------------------------------------------------


def _record_path(folder: Path, key: str) -> Path:
    """Where Snakemake's file persistence keeps the record of ``key`` (its encoded name,
    split into folders at the longest file name; ``snakemake/persistence/file.py``)."""
    try:
        chunk = (os.pathconf(folder, "PC_NAME_MAX") or 255) - 1
    except (OSError, ValueError):
        chunk = 254
    b64 = base64.urlsafe_b64encode(key.encode()).decode()
    parts = [b64[i:i + chunk] for i in range(0, len(b64), chunk)]
    return folder.joinpath(*["@" + p for p in parts[:-1]], parts[-1])


def _decode(folder: Path, path: Path) -> str:
    parts = path.relative_to(folder).parts
    return base64.urlsafe_b64decode("".join(p.removeprefix("@") for p in parts)).decode()


def job_record(run_dir: Path, output: str) -> dict | None:
    """Snakemake's record of the job that made ``output`` (rule, params, ...), or None."""
    path = _record_path(run_dir / ".snakemake" / "metadata", output)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def unfinished_outputs(run_dir: Path) -> list[str]:
    """Outputs of jobs that started and never finished (Snakemake's incomplete markers)."""
    folder = run_dir / ".snakemake" / "incomplete"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            found.append(_decode(folder, path))
        except ValueError:  # not a marker (e.g. migration_underway)
            continue
    return found


def code_of(record: dict) -> str | None:
    """The code digest among a job record's params (None for a rule that runs no script)."""
    found = sorted(p[1:-1] for p in record.get("params") or [] if isinstance(p, str) and _CODE_PARAM.match(p))
    return ",".join(found) or None


def _shown(path: Path) -> str:
    """A folder as a gallery records it: relative to the working directory where it lies inside it."""
    path = path.resolve()
    cwd = Path.cwd().resolve()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def check_run(run_dir: str | Path, target: str = FINAL_TARGET) -> dict:
    """The pedigree of a complete run of one config and one code version, or :class:`Refused`
    with one sentence: the run recorded no finished final target, a file that target lists is
    missing or was left by an unfinished job, or its outputs were made by more than one code
    version (one rule's outputs carry different code digests, or other code than the run's
    last invocation ran)."""
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    if record is None:
        raise Refused(f"{run_dir} has no {RUN_RECORD}: it is not a run of this workflow, or one made before runs "
                      "recorded their config and code (an invocation of the workflow that runs at least one job records it)")
    if not record.get("finished"):
        raise Refused(f"{run_dir} is incomplete: its last invocation (started {record.get('started')}) has not "
                      "finished; it was killed, failed or is still running")
    expected = record.get("targets", {}).get(target)
    if expected is None:
        raise Refused(f"{run_dir} is incomplete: no invocation of its config built the final target "
                      f"'{target}' to the end")
    missing = [f for f in expected if not (run_dir / f).exists()]
    if missing:
        raise Refused(f"{run_dir} is incomplete: {len(missing)} of the {len(expected)} files of its final target "
                      f"are missing ({missing[0]}{', …' if len(missing) > 1 else ''})")
    unfinished = unfinished_outputs(run_dir)
    if unfinished:
        raise Refused(f"{run_dir} is incomplete: {len(unfinished)} outputs were left by jobs that did not finish "
                      f"({unfinished[0]}{', …' if len(unfinished) > 1 else ''})")
    made_by: dict[str, dict[str, str]] = {}  # rule -> code digest -> an output it made
    for output in expected:
        job = job_record(run_dir, output)
        if job is None or not job.get("rule"):
            raise Refused(f"{run_dir} keeps no record of the job that made {output} (.snakemake/metadata): "
                          "what made it is unknown")
        code = code_of(job)
        if code is not None:
            made_by.setdefault(job["rule"], {}).setdefault(code, output)
    last = record.get("code", {})
    for rule, codes in sorted(made_by.items()):
        if len(codes) > 1:
            shown = ", ".join(f"{c} ({o})" for c, o in sorted(codes.items()))
            raise Refused(f"{run_dir} was made by more than one code version: the outputs of rule {rule} carry "
                          f"the code digests {shown}")
        (code, output), = codes.items()
        if last.get(rule) is not None and last[rule] != code:
            raise Refused(f"{run_dir} was made by more than one code version: {output} of rule {rule} was made by "
                          f"code {code}, the run's last invocation ran code {last[rule]}")
    return {
        "run": _shown(run_dir),
        "config": {"files": record["configfiles"], "values": record["config_values"],
                   "digest": record["config_digest"]},
        "code": {"commit": record["commit"], "modified": bool(record.get("dirty")),
                 "digests": {rule: next(iter(codes)) for rule, codes in sorted(made_by.items())}},
    }


# -- a gallery's record --------------------------------------------------------------------


def read_gallery_record(gallery: str | Path) -> dict | None:
    path = Path(gallery) / GALLERY_RECORD
    return json.loads(path.read_text()) if path.exists() else None


def check_gallery(gallery: str | Path, pedigree: dict, generated: Sequence[str], replace: bool) -> None:
    """:class:`Refused` with one sentence if exporting a run of ``pedigree`` into ``gallery``
    would mix it with what another config or other code made: the gallery's record names
    other config files or values, or other code digests, or the gallery holds generated
    files (``generated``: its files other than subfolders) but no record. ``replace`` says the
    run replaces the gallery whole, whatever made it before."""
    gallery = Path(gallery)
    if replace or not gallery.exists():
        return
    old = read_gallery_record(gallery)
    if old is None:
        if generated:
            raise Refused(f"{gallery} records no {GALLERY_RECORD}, so what made its {len(generated)} files is "
                          "unknown: replacing them with this run needs --replace")
        return
    new_config, old_config = pedigree["config"], old["config"]
    if (new_config["files"], new_config["values"]) != (old_config["files"], old_config["values"]):
        raise Refused(f"{pedigree['run']} is a run of another config than {gallery}: "
                      f"{' '.join(new_config['files'] + new_config['values'])} against "
                      f"{' '.join(old_config['files'] + old_config['values'])} (--replace replaces the gallery)")
    if new_config["digest"] != old_config["digest"]:
        raise Refused(f"{pedigree['run']} is a run of other values of the config of {gallery} "
                      f"(config digest {new_config['digest']} against {old_config['digest']}; "
                      "--replace replaces the gallery)")
    new_code, old_code = pedigree["code"]["digests"], old["code"]["digests"]
    if new_code != old_code:
        rules = sorted(r for r in set(new_code) | set(old_code) if new_code.get(r) != old_code.get(r))
        raise Refused(f"{pedigree['run']} was made by other code than {gallery} (commit "
                      f"{pedigree['code']['commit'][:12]} against {old['code']['commit'][:12]}; code digests of "
                      f"{', '.join(rules[:3])}{', …' if len(rules) > 3 else ''} differ; --replace replaces the gallery)")
