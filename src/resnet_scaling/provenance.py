"""What made a result: a digest of the code a workflow rule runs, and config values in a
canonical form, for Snakemake's ``params`` rerun trigger.

Snakemake reruns a script rule when its script is newer than its outputs, but a change in
a module of this package that the script imports goes unseen, and a dict param counts its
key order. Every rule that runs a script or a notebook therefore gets a ``code`` param
(:func:`code_digest`): the digest of the script and of every module of ``resnet_scaling``
it imports, directly or through other modules, with the ``__init__`` of every package on
the way, and of the config schema whose defaults the library fills in. Modules are compared
by their syntax tree without docstrings: a change in comments, docstrings or layout
reruns nothing, any other change reruns every result made with that module. Other files of
their folders (the C++ of the compiled engine) are compared byte for byte.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path

PACKAGE = "resnet_scaling"
PACKAGE_DIR = Path(__file__).resolve().parent


def canonical(value):
    """``value`` with the keys of every dict in it sorted: equal configs, whatever the key
    order of the YAML they came from, give equal params (and equal ``repr``)."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, tuple):
        return tuple(canonical(v) for v in value)
    return value


#: Config mappings whose order means something: the order of experiments is the order of the
#: rows of every table and of the legends (their contents are sorted like the rest).
ORDERED = ("experiments", "conv_experiments")


def canonical_config(config: dict) -> dict:
    """The config with every mapping's keys sorted, except the order of the experiments
    (:data:`ORDERED`): a YAML re-dump of the same values gives the same config."""
    return {
        key: ({name: canonical(entry) for name, entry in value.items()}
              if key in ORDERED and isinstance(value, dict) else canonical(value))
        for key, value in sorted(config.items())
    }


def _module_file(name: str) -> Path | None:
    """The source file of a dotted module name of the package (a package's ``__init__``)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join((PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _statements(body: list[ast.stmt]):
    """Every statement of a body and of the bodies nested in it (functions, classes, if, try,
    with, loops, match), without descending into expressions."""
    for stmt in body:
        yield stmt
        for name in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(stmt, name, None) or [])
        for part in [*getattr(stmt, "handlers", []), *getattr(stmt, "cases", [])]:
            yield from _statements(part.body)


def imported_names(tree: ast.Module, module: str | None = None, is_package: bool = False) -> set[str]:
    """Dotted names of every module an ``import`` statement anywhere in ``tree`` may load
    (including ``from package import submodule`` and relative imports, resolved against
    ``module``)."""
    names: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    continue
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _parents(name: str) -> list[str]:
    """The packages whose ``__init__`` runs on importing ``name``, and ``name`` itself."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _parsed(path: Path) -> tuple[str, frozenset[str], frozenset[str]]:
    """(digest of the syntax tree without docstrings, package modules it imports, names of
    the other entries of its folder that its code names) of one file."""
    stat = path.stat()
    return _parsed_version(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=None)
def _parsed_version(path: Path, mtime_ns: int, size: int) -> tuple[str, frozenset[str], frozenset[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    inside = path.is_relative_to(PACKAGE_DIR)
    module = _module_name(path) if inside else None
    imports = imported_names(tree, module, path.name == "__init__.py")
    dump = _strip_docstrings(tree)
    entries = [e.name for e in path.parent.iterdir() if e.name != "__pycache__" and e.suffix not in (".py", ".pyc")]
    return (hashlib.sha256(dump.encode()).hexdigest(), frozenset(n for n in imports if n.split(".")[0] == PACKAGE),
            frozenset(name for name in entries if repr(name)[1:-1] in dump))


def _strip_docstrings(tree: ast.Module) -> str:
    """The dump of a syntax tree without its docstrings (the tree loses them)."""
    for node in [tree, *_statements(tree.body)]:
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def notebook_source(path: str | Path) -> str:
    """The code cells of a Jupyter notebook, one after the other (IPython magics left out)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            lines += [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines) + "\n"


def package_modules(script: str | Path) -> list[Path]:
    """Every source file of the package that ``script`` (a Python file or a notebook) runs
    when it is executed: its imports, theirs, and so on, with each package's ``__init__``."""
    script = Path(script).resolve()
    if script.suffix == ".ipynb":
        tree = ast.parse(notebook_source(script), filename=str(script))
        todo = {n for n in imported_names(tree) if n.split(".")[0] == PACKAGE}
    else:
        todo = set(_parsed(script)[1])
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        for parent in _parents(name):
            if parent in seen:
                continue
            path = _module_file(parent)
            if path is None:  # an attribute imported from a module, not a module
                continue
            seen[parent] = path
            todo |= _parsed(path)[1]
    return sorted(set(seen.values()))


def data_files(modules: list[Path]) -> list[Path]:
    """The files other than Python that the ``modules`` name in their code: an entry of a
    module's folder (a file, or a subfolder that is not a package, with all its files) whose
    name is in the module's code, such as ``"csrc"`` in ``training/compiled.py``, the C++ of
    the compiled engine built on first use: code that runs without being imported. The config
    schema beside ``config.py`` is not one of them: it enters without its descriptions
    (:func:`_schema_digest`)."""
    from .config import SCHEMA_PATH

    found: set[Path] = set()
    for module in modules:
        for name in _parsed(module)[2]:
            entry = module.parent / name
            if entry.resolve() == SCHEMA_PATH:
                continue
            if entry.is_file():
                found.add(entry)
            elif not (entry / "__init__.py").exists():
                found.update(p for p in entry.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(found)


@lru_cache(maxsize=None)
def _schema_digest() -> str:
    """The config schema without its descriptions: the library fills in its defaults
    (``config.section_settings``), and never reads the descriptions."""
    import yaml

    from .config import SCHEMA_PATH

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schema = strip(yaml.load(SCHEMA_PATH.read_text(encoding="utf-8"), Loader=loader))
    return hashlib.sha256(repr(canonical(schema)).encode()).hexdigest()


def code_digest(script: str | Path) -> str:
    """One digest of what a rule runs: its script or notebook, the package modules it
    imports (:func:`package_modules`) with the other files of their folders
    (:func:`data_files`, compared byte for byte), and the config schema. Equal code gives an
    equal digest on every machine; comments, docstrings and layout of Python do not enter it."""
    script = Path(script).resolve()
    digest = hashlib.sha256()
    if script.suffix == ".ipynb":
        digest.update(_strip_docstrings(ast.parse(notebook_source(script))).encode())
    else:
        digest.update(_parsed(script)[0].encode())
    modules = package_modules(script)
    for path in modules:
        digest.update(f"{_module_name(path)}:{_parsed(path)[0]}\n".encode())
    for path in data_files(modules):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b":" + path.read_bytes())
    digest.update(_schema_digest().encode())
    return digest.hexdigest()[:16]
