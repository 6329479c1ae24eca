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
          "init_limits": "init_limits", "regimes": "regimes", "cifar": "cnn"}


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
