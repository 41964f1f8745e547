"""A framework is one unit: a backend folder and a registry row. The package's shape keeps it so.

- Every registered framework has its backend folder, and every backend folder a registry row.
- Outside the registry (core/frameworks.py), the article's pair (core/article.py) and the backends
  themselves, no module of the package names a framework in a string: a table keyed by a
  framework's name anywhere else would be one more place to edit for a new framework.
- The params schema accepts exactly the registered frameworks.
- No import cycle: imports only go one way (run-time imports; those under TYPE_CHECKING are for
  the type checker alone).
- Modules of one concern: none is over MAX_LINES.
Nothing here imports a framework: each check reads the source or the registry.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

from lenet_compare.core import frameworks
from lenet_compare.core.config import load_schema

PACKAGE = REPO / "src" / "lenet_compare"
BACKENDS = PACKAGE / "train" / "backends"
# Where a framework's key may be written: the registry, the article's pair, each backend.
MAY_NAME_FRAMEWORKS = {PACKAGE / "core" / "frameworks.py", PACKAGE / "core" / "article.py"}
# "numpy" is also the library: where a module names the library (its version, a list of the
# libraries a report ran with), not the reference framework.
THE_LIBRARY = {("train/checkpoints.py", "numpy"), ("report/document.py", "numpy"), ("bench/report.py", "numpy")}
MAX_LINES = 450  # "about 450" in the issue that split the large modules; a module over it does two things


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_framework_is_a_backend_folder_and_a_registry_row():
    folders = {p.name for p in BACKENDS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(frameworks.FRAMEWORKS)
    for f in frameworks.REGISTRY:
        assert (REPO / f.backend_dir / "backend.py").is_file(), f.key
        assert f.backend_module == module_name(REPO / f.backend_dir / "backend.py")
    assert set(frameworks.DEFAULT_FRAMEWORKS) < set(frameworks.FRAMEWORKS)  # the reference is not in the study


def test_no_module_outside_the_registry_names_a_framework():
    keys = set(frameworks.FRAMEWORKS)
    found = []
    for path in modules():
        if path in MAY_NAME_FRAMEWORKS or BACKENDS in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = (path.relative_to(PACKAGE).as_posix(), node.value) if isinstance(node, ast.Constant) else None
            if isinstance(node, ast.Constant) and node.value in keys and where not in THE_LIBRARY:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not found, "name the framework through core.frameworks instead:\n" + "\n".join(found)


def test_the_schema_takes_its_frameworks_from_the_registry():
    assert load_schema()["properties"]["frameworks"]["items"]["enum"] == list(frameworks.FRAMEWORKS)


def runtime_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports when it runs (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    known = {module_name(p) for p in modules()}
    return {n for n in names if n in known and n != module_name(path)}


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (module -> the modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = {module_name(p): runtime_imports(p) for p in modules()}
    # Package __init__ files hold only a docstring (tests/test_step_code.py): importing a module
    # of a package is an edge to that module, not to the package.
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle():
    """The check itself: the cycle that train/checkpoints.py and train/loop.py once made."""
    graph = {"train.loop": {"train.checkpoints"}, "train.checkpoints": {"train.loop", "core.cli"}, "core.cli": set()}
    cycle = import_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"train.loop", "train.checkpoints"}
    assert import_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_modules_are_of_one_concern(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(REPO)} has {n} lines: split it by concern"
