"""What makes a result stale: the code a rule runs (its script and the package modules it
imports) and the config's values, not their key order or the code's comments."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from resnet_scaling.provenance import canonical, canonical_config, imported_names, package_modules
from workflow_utils import ROOT, copy_workflow

SCRIPTS = ("workflow/scripts/make_dataset.py", "workflow/scripts/train.py", "workflow/scripts/scaling_figures.py",
           "notebooks/overview.py.ipynb")


def _digests(work) -> dict[str, str]:
    """code_digest of each of SCRIPTS in a copy of the repository, in a fresh process."""
    code = ("import sys\nfrom resnet_scaling.provenance import code_digest\n"
            f"for s in {SCRIPTS!r}: print(code_digest(s))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(work / "src")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(zip(SCRIPTS, proc.stdout.split()))


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_a_change_in_an_imported_module_changes_the_digest_of_every_rule_that_runs_it(tmp_path):
    """SYNTHETIC_STEPS in data.py makes the data, so the training too; a figure's module only
    the figures; comments and docstrings nothing."""
    work = copy_workflow(tmp_path / "wf")
    before = _digests(work)
    assert len(set(before.values())) == len(SCRIPTS)
    _edit(work / "src/resnet_scaling/training/data.py", "SYNTHETIC_STEPS = 100", "SYNTHETIC_STEPS = 50")
    after = _digests(work)
    changed = {s for s in SCRIPTS if after[s] != before[s]}
    # the data and the training import data.py; so do the figures, through tables -> weights -> ...
    assert {"workflow/scripts/make_dataset.py", "workflow/scripts/train.py"} <= changed
    assert "notebooks/overview.py.ipynb" not in changed  # reads the tables only (io, tables)
    _edit(work / "src/resnet_scaling/training/data.py", "SYNTHETIC_STEPS = 50", "SYNTHETIC_STEPS = 100")
    assert _digests(work) == before

    _edit(work / "src/resnet_scaling/plots/scaling.py", '"""', '"""A changed docstring. ')
    text = (work / "src/resnet_scaling/plots/scaling.py").read_text()
    (work / "src/resnet_scaling/plots/scaling.py").write_text("# a comment\n" + text.replace("\n\n\n", "\n\n\n\n", 1))
    assert _digests(work) == before
    _edit(work / "src/resnet_scaling/plots/scaling.py", "import", "import math  # noqa\nimport")
    after = _digests(work)
    assert {s for s in SCRIPTS if after[s] != before[s]} == {"workflow/scripts/scaling_figures.py"}


def test_the_cpp_of_the_compiled_engine_counts_where_the_engine_is_imported(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    before = _digests(work)
    cpp = work / "src/resnet_scaling/training/csrc/fc_engine.cpp"
    cpp.write_text(cpp.read_text() + "\n// one more line\n")
    after = _digests(work)
    # training/compiled.py names csrc/ and training/resnet.py imports it; the data does not
    assert after["workflow/scripts/train.py"] != before["workflow/scripts/train.py"]
    assert after["workflow/scripts/make_dataset.py"] == before["workflow/scripts/make_dataset.py"]


def test_the_script_itself_and_the_schema_defaults_count(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    before = _digests(work)
    _edit(work / "workflow/scripts/train.py", 'start_job(snakemake, log_mode="a")',
          'start_job(snakemake, log_mode="w")')
    assert _digests(work)["workflow/scripts/train.py"] != before["workflow/scripts/train.py"]
    work = copy_workflow(tmp_path / "wf2")
    schema = work / "src/resnet_scaling/config.schema.yaml"
    _edit(schema, "description:", "description: reworded;")
    assert _digests(work) == before  # the library never reads the descriptions
    raw = yaml.safe_load(schema.read_text())
    raw["properties"]["seed"]["default"] = 1 + raw["properties"]["seed"].get("default", 0)
    schema.write_text(yaml.safe_dump(raw))
    assert all(d != before[s] for s, d in _digests(work).items() if s != "notebooks/overview.py.ipynb")


def test_imports_are_followed_through_packages_and_relative_names():
    import ast

    tree = ast.parse("from . import maps\nfrom ..scaling.tables import read_table\n"
                     "import resnet_scaling.plots.scaling\ndef f():\n    from .readers import plain\n")
    names = imported_names(tree, "resnet_scaling.analyse.report")
    assert {"resnet_scaling.analyse.maps", "resnet_scaling.scaling.tables", "resnet_scaling.scaling.tables.read_table",
            "resnet_scaling.plots.scaling", "resnet_scaling.analyse.readers.plain"} <= names
    modules = {p.relative_to(ROOT / "src" / "resnet_scaling").as_posix()
               for p in package_modules(ROOT / "workflow" / "scripts" / "limits_fit.py")}
    # a package's __init__ runs on importing any of its modules
    assert {"__init__.py", "limits/__init__.py", "io.py"} <= modules
    assert not any(m.startswith("cnn/") for m in modules)


def test_canonical_config_ignores_key_order_but_keeps_the_order_of_experiments():
    a = {"datasets": {"synthetic": {"kind": "synthetic", "n_train": 128, "dim": 10}},
         "experiments": {"b": {"lr": 1, "depths": {"min": 4, "max": 8}}, "a": {"lr": 2}},
         "seed": 0, "fbsde": {"cases": [{"name": "x", "depths": [8, 16]}]}}
    b = {"seed": 0, "fbsde": {"cases": [{"depths": [8, 16], "name": "x"}]},
         "experiments": {"b": {"depths": {"max": 8, "min": 4}, "lr": 1}, "a": {"lr": 2}},
         "datasets": {"synthetic": {"dim": 10, "n_train": 128, "kind": "synthetic"}}}
    assert repr(canonical_config(a)) == repr(canonical_config(b))
    assert list(canonical_config(a)["experiments"]) == ["b", "a"]  # the order of rows and legends
    assert canonical([{"y": 1, "x": (2, {"b": 1, "a": 2})}]) == [{"x": (2, {"a": 2, "b": 1}), "y": 1}]
