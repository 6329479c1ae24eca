"""The package stands alone: installed (not editable) away from the checkout, it finds its
config schema inside itself and its command runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_utils import ROOT


@pytest.mark.slow
def test_an_installed_copy_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    shutil.rmtree(source)  # nothing may be read from the copy the wheel was built from
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args):
        proc = subprocess.run([sys.executable, *args], cwd=elsewhere, capture_output=True, text=True,
                              timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    code = (
        "import resnet_scaling, resnet_scaling.config as c\n"
        "print(resnet_scaling.__file__)\n"
        "print(c.SCHEMA_PATH)\n"
        "schema = c.load_schema()\n"
        "assert 'experiments' in schema['properties'], sorted(schema['properties'])\n"
        "print(c.section_settings('scaling')['regime']['quantity'])\n"
    )
    package_file, schema_path, quantity = run("-c", code).split()
    assert Path(package_file).is_relative_to(site), package_file
    assert Path(schema_path).is_relative_to(site) and Path(schema_path).is_file(), schema_path
    assert quantity
    assert "usage" in run("-m", "resnet_scaling.cli", "analyse", "--help").lower()
