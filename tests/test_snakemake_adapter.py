"""The one module that touches Snakemake's internals checks them against the installed
Snakemake: an upgrade that renames or reshapes one fails here, naming it."""

from __future__ import annotations

from pathlib import Path

from resnet_scaling import snakemake_adapter
from resnet_scaling.snakemake_adapter import INTERNALS, internals_problems


def test_the_installed_snakemake_has_every_internal_the_adapter_uses():
    problems = internals_problems()
    assert not problems, ("Snakemake's internals changed; adapt src/resnet_scaling/snakemake_adapter.py:\n"
                          + "\n".join(problems))


def test_a_changed_internal_is_named():
    problems = internals_problems([
        ("snakemake.rules", "Rule", "no_such_attribute", None),
        ("snakemake.persistence.file", "FilePersistence", "_no_such_method", ("self", "keys")),
        ("snakemake.cli", "parse_config", None, ("entries", "more")),
        ("snakemake.no_such_module", "Thing", None, ()),
    ])
    assert len(problems) == 4
    assert problems[0].startswith("snakemake.rules.Rule.no_such_attribute: no such attribute")
    assert problems[1].startswith("snakemake.persistence.file.FilePersistence._no_such_method: no such method")
    assert problems[2] == "snakemake.cli.parse_config: takes (entries), this adapter calls it as (entries, more)"
    assert problems[3].startswith("snakemake.no_such_module.Thing: not found")


def test_every_internal_the_adapter_reads_is_listed():
    source = Path(snakemake_adapter.__file__).read_text()
    for _, owner, attribute, _ in INTERNALS:
        assert (attribute or owner) in source


def test_config_values_and_files_are_parsed_as_snakemake_parses_them(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: {b: 1}\n")
    assert snakemake_adapter.load_configfile(path) == {"a": {"b": 1}}
    assert snakemake_adapter.parse_config_values(["seed=2", "device=cpu"]) == {"seed": 2, "device": "cpu"}


def test_the_invocation_is_read_from_the_workflow_object():
    from types import SimpleNamespace as NS

    workflow = NS(overwrite_configfiles=None, configfiles=["config/smoke.yaml"],
                  config_settings=NS(config_args=None), exec_mode=NS(name="DEFAULT"), overwrite_workdir=None)
    got = snakemake_adapter.invocation(workflow)
    assert got == snakemake_adapter.Invocation(["config/smoke.yaml"], [], True, False)
    workflow.overwrite_configfiles, workflow.exec_mode, workflow.overwrite_workdir = ["x.yaml"], NS(name="SUBPROCESS"), "/d"
    assert snakemake_adapter.invocation(workflow) == snakemake_adapter.Invocation(["x.yaml"], [], False, True)
