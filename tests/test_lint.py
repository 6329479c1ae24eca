"""Static checks of the workflow: ``snakemake --lint`` and ``snakefmt --check`` are clean,
every rule declares what a scheduler needs, and the conda environments agree with the pinned
requirements and cover every import of the code their rules run."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slurm_helpers import ROOT, clean_env, rule_texts, run_snakemake
from workflow_utils import copy_workflow

ENVS = ROOT / "envs"
PACKAGE = ROOT / "src" / "resnet_scaling"
# Import names whose distribution is named differently.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow"}
# Provided to every script by Snakemake itself (its preamble puts snakemake on sys.path).
PROVIDED = {"snakemake"}
NOTEBOOK_KERNEL = {"ipykernel", "nbconvert", "nbformat"}


def test_snakemake_lint_is_clean(tmp_path):
    work = copy_workflow(tmp_path / "lint")
    proc = run_snakemake(["--lint", "--configfile", "config/smoke.yaml"], work, clean_env(), timeout=300)
    assert proc.returncode == 0 and "Lints for" not in proc.stdout, proc.stdout[-8000:]


def test_snakefmt_check_is_clean():
    snakefmt = Path(sys.executable).parent / "snakefmt"
    files = [ROOT / "Snakefile", ROOT / "workflow"]
    proc = subprocess.run([str(snakefmt), "--check", "--diff", *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]


# -- what every rule declares ---------------------------------------------------------------


def acting_rules():
    rules = [rule for rule in rule_texts().values() if rule.runs_something]
    assert rules, "no rule found"
    return rules


def quoted(body: str) -> str:
    match = re.search(r"[\"']([^\"']+)[\"']", body)
    assert match, body
    return match.group(1)


def test_every_rule_declares_log_threads_resources_and_conda():
    problems = []
    for rule in acting_rules():
        d = rule.directives
        missing = [key for key in ("log", "threads", "resources", "conda") if key not in d]
        if missing:
            problems.append(f"{rule.name} ({rule.file.name}): no {', '.join(missing)}")
            continue
        for key in ("mem_mb", "runtime"):
            if not re.search(rf"\b{key}\s*=", d["resources"]):
                problems.append(f"{rule.name}: resources without {key}")
        env = (rule.file.parent / quoted(d["conda"])).resolve()
        if env.parent != ENVS or not env.exists():
            problems.append(f"{rule.name}: conda env {quoted(d['conda'])} is not a file under envs/")
        if not quoted(d["log"]).startswith("logs/"):
            problems.append(f"{rule.name}: log outside logs/")
    assert not problems, "\n".join(problems)


def test_training_is_benchmarked():
    assert "benchmark" in rule_texts()["train"].directives


def test_figure_rules_run_locally():
    """Rules that only draw figures take seconds: on a cluster they run on the submit host
    (``localrules:`` or ``localrule: True``) instead of waiting in the queue as jobs of their own."""
    problems = []
    for rule in acting_rules():
        outputs = re.findall(r"[\"']((?:figures|results)/[^\"']+)[\"']", rule.directives.get("output", ""))
        if outputs and all(o.startswith("figures/") for o in outputs):
            if not rule.local:
                problems.append(f"{rule.name} ({rule.file.name})")
    assert not problems, "figure rules that are not local rules: " + ", ".join(problems)


# -- conda environments ---------------------------------------------------------------------


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
        if match:
            out[match.group(1).lower()] = match.group(2)
    return out


def requirements() -> dict[str, str]:
    return pins((ROOT / "requirements.txt").read_text().splitlines())


def env_packages(path: Path) -> tuple[dict[str, str], set[str], str]:
    """(pip pins, conda package names, python version) of an environment file."""
    spec = yaml.safe_load(path.read_text())
    pip_lines, conda_names, python = [], set(), ""
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            pip_lines += dep.get("pip", [])
        else:
            name = re.split(r"[=<>! ]", dep, maxsplit=1)[0]
            conda_names.add(name.lower())
            if name == "python":
                python = dep.split("=", 1)[1]
    pip = pins(pip_lines)
    assert len(pip) == len(pip_lines), f"{path.name}: every pip entry must be pinned with =="
    return pip, conda_names, python


def env_files():
    files = sorted(ENVS.glob("*.yaml"))
    assert files
    return files


@pytest.mark.parametrize("env", env_files(), ids=lambda p: p.name)
def test_env_pins_match_requirements(env):
    pip, conda_names, python = env_packages(env)
    req = requirements()
    wrong = {name: (version, req.get(name)) for name, version in pip.items() if req.get(name) != version}
    assert not wrong, f"{env.name}: pins differ from requirements.txt (env, requirements): {wrong}"
    assert "python" in conda_names and "pip" in conda_names
    assert python.startswith("3.11"), "the pins are those of the Python 3.11 environment"


def package_module(dotted: str) -> Path | None:
    """The file of ``resnet_scaling.<dotted>`` (a module or a subpackage), if it exists."""
    base = PACKAGE.joinpath(*dotted.split(".")) if dotted else PACKAGE
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def third_party_imports(source: str, here: Path | None = None, seen: set[Path] | None = None) -> set[str]:
    """Top-level third-party modules that ``source`` imports, following the imports of
    resnet_scaling modules (absolute or relative; ``here`` is the file of ``source``)."""
    seen = set() if seen is None else seen
    found: set[str] = set()
    local: list[str] = []  # dotted names inside resnet_scaling
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = here.parent
            for _ in range(node.level - 1):
                base = base.parent
            prefix = ".".join(base.relative_to(PACKAGE).parts + ((node.module,) if node.module else ()))
            local += [prefix] + [f"{prefix}.{a.name}".strip(".") for a in node.names]
            continue
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            top, _, rest = name.partition(".")
            if top == "resnet_scaling":
                local.append(rest)
            elif top not in sys.stdlib_module_names and top not in PROVIDED and top != "__future__":
                found.add(top)
    for dotted in local:
        path = package_module(dotted)
        if path is not None and path not in seen:
            seen.add(path)
            found |= third_party_imports(path.read_text(), path, seen)
    return found


def code_of(rule) -> tuple[str, bool]:
    """The source a rule runs (its script, or a notebook's code cells) and whether it is a notebook."""
    d = rule.directives
    if "script" in d:
        return (rule.file.parent / quoted(d["script"])).read_text(), False
    if "notebook" in d:
        cells = json.loads((rule.file.parent / quoted(d["notebook"])).read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))), True
    return "", False


@pytest.mark.slow
def test_envs_cover_the_imports_of_their_rules():
    problems = []
    for rule in acting_rules():
        source, is_notebook = code_of(rule)
        if not source:
            continue
        needed = {DISTRIBUTIONS.get(m, m).lower() for m in third_party_imports(source)}
        if is_notebook:
            needed |= NOTEBOOK_KERNEL
        env = (rule.file.parent / quoted(rule.directives["conda"])).resolve()
        pip, conda_names, _ = env_packages(env)
        missing = needed - set(pip) - conda_names
        if missing:
            problems.append(f"{rule.name}: {env.name} lacks {sorted(missing)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", env_files(), ids=lambda p: p.name)
def test_post_deploy_script_makes_the_package_importable(env, tmp_path):
    """Conda blanks PYTHONPATH in rule jobs; the post-deploy script must make resnet_scaling
    importable from the checkout anyway. Run it in a bare virtual environment standing in for
    the fresh conda environment (activated: its python first on PATH), from a repository copy."""
    script = env.with_name(env.stem + ".post-deploy.sh")
    assert script.exists(), f"{env.name} has no post-deploy script"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    work = copy_workflow(tmp_path / "repo")
    env_vars = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(script)], cwd=work, env=env_vars, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import resnet_scaling; print(resnet_scaling.__file__)"],
                           cwd=tmp_path, env=env_vars, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == work / "src" / "resnet_scaling" / "__init__.py"
