"""The package mirrors the workflow: one folder per stage, named by the stage's rule file, and
imports that point one way (docs/design.md, "The package")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from workflow_utils import ROOT

PACKAGE = ROOT / "src" / "resnet_scaling"
# Rule file of each stage → its folder in the package.
STAGES = {"train": "training", "scaling": "scaling", "limits": "limits", "fbsde": "fbsde",
          "init_limits": "init_limits", "phase_diagram": "phase_diagram", "cifar": "cnn", "verdict": "verdict",
          "transfer": "transfer"}
#: The folders that may import the verdict stage: itself, the convolutional stage (whose own
#: scorecard scores with it) and the tools outside the DAG; every other stage comes before it.
AFTER_VERDICT = {"verdict", "cnn", "analyse", "cli", "gallery", "findings"}
#: A module longer than this is more than one concept (docs/design.md, "The package").
MAX_MODULE_LINES = 500
#: A function longer than this does more than one thing.
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted name → file of every module and package of resnet_scaling."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Edges module → module it imports (at any depth of its code), with the packages Python
    runs on the way (importing ``a.b.c`` runs ``a.b`` first)."""
    mods = modules()

    def known(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph = {name: set() for name in mods}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                target = known(target)
                parts = target.split(".")
                for k in range(2, len(parts) + 1):
                    step = ".".join(parts[:k])
                    if step != name and not name.startswith(step + "."):
                        graph[name].add(step)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (empty when there is none), by depth-first search."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert "resnet_scaling.training.data" in graph and graph["resnet_scaling.training.data"]
    assert not cycle(graph), " → ".join(cycle(graph))


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle(graph) == ["a", "b", "c", "a"]


def test_every_stage_has_its_folder_naming_its_rule_file_and_maths():
    rule_files = {p.stem for p in (ROOT / "workflow" / "rules").glob("*.smk")} - {"common", "notebooks"}
    assert rule_files == set(STAGES), "a rule file without a folder in the package (or the reverse)"
    for rule_file, folder in STAGES.items():
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
        assert f"workflow/rules/{rule_file}.smk" in doc, folder
        assert re.search(r"docs/maths\.md §\d", doc), folder
        assert "Inputs" in doc or "Input:" in doc, folder
        assert "Outputs" in doc, folder


def test_one_loglog_fit():
    defined = [path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in ("loglog_fit", "LogLogFit")]
    assert sorted(defined) == ["scaling/exponents.py", "scaling/exponents.py"], defined


def test_no_earlier_stage_imports_the_verdict_stage():
    graph = import_graph()
    back = sorted(f"{name} → {target}" for name, targets in graph.items() for target in targets
                  if target.startswith("resnet_scaling.verdict")
                  and name.split(".")[1] not in AFTER_VERDICT)
    assert not back, "an arrow running back up to the verdict stage: " + "; ".join(back)
    assert any(t.startswith("resnet_scaling.verdict") for t in graph["resnet_scaling.cnn.scaling"])


def test_no_earlier_rule_reads_the_verdict_stage_outputs():
    verdict = (ROOT / "workflow" / "rules" / "verdict.smk").read_text()
    outputs = set(re.findall(r'"(results/[^"{]+)"', verdict.split("rule verdict_scorecard:")[1].split("output:")[1]
                             .split("log:")[0]))
    assert outputs == {"results/scorecard.md", "results/scorecard.html"}
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        if path.stem == "verdict":
            continue
        text = path.read_text()
        assert not [o for o in outputs if o in text], f"{path.name} names an output of the verdict stage"


def test_no_module_is_longer_than_the_limit():
    lengths = {path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
               for path in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not long, f"modules longer than {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_longer_than_the_limit():
    long, checked = [], set()
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE).as_posix()
        checked.add(name.split("/")[0])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.name} ({n} lines)")
    assert {"analyse", "plots", "init_limits", "scaling", "training", "verdict", "phase_diagram"} <= checked
    assert not long, f"functions longer than {MAX_FUNCTION_LINES} lines: {long}"


#: The ground floor: modules every stage may import, which import no stage themselves.
GROUND_FLOOR = {"resnet_scaling.config", "resnet_scaling.io", "resnet_scaling.dataset_files"}


def test_config_stands_on_the_ground_floor():
    graph = import_graph()
    reached, todo = set(), ["resnet_scaling.config"]
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    above = sorted(reached - GROUND_FLOOR - {"resnet_scaling"})
    assert not above, "config imports modules above the ground floor: " + ", ".join(above)
    for name in GROUND_FLOOR:
        assert graph[name] <= GROUND_FLOOR | {"resnet_scaling"}, f"{name} imports {sorted(graph[name])}"



def test_no_module_of_the_package_imports_snakemake():
    allowed = {"snakemake_adapter.py"}
    offenders = sorted({path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                       if path.name not in allowed
                       for node in ast.walk(ast.parse(path.read_text()))
                       if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "snakemake" for a in node.names))
                       or (isinstance(node, ast.ImportFrom) and not node.level
                           and (node.module or "").split(".")[0] == "snakemake")})
    assert not offenders, f"modules importing snakemake (only the adapter may): {offenders}"
