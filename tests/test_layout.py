"""The package's folders are the workflow's steps, and imports only go down the DAG.

A module may import from its own sub-package and from those below it, never from one above:
core < data < train < evaluate < report < ablation < bench. Every import counts, those inside
functions too (they run all the same).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lenet_compare"
LAYERS = ("core", "data", "train", "evaluate", "report", "ablation", "bench")
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def step_of(path: Path) -> str:
    """The step folder a module lives in (a backend's folder, train/backends/jax/, is train's)."""
    return path.relative_to(PACKAGE).parts[0]


def layer_of(dotted: str) -> str | None:
    """The sub-package of ``lenet_compare.<layer>...``; None for anything else."""
    parts = dotted.split(".")
    return parts[1] if parts[0] == "lenet_compare" and len(parts) > 1 else None


def imported_layers(path: Path) -> set[tuple[int, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports (lenet_compare.<step>...)"
            names = [node.module or ""]
            if node.module == "lenet_compare":
                names = [f"lenet_compare.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update((node.lineno, layer) for layer in map(layer_of, names) if layer is not None)
    return found


def test_every_module_lives_in_a_step_folder():
    assert {p.name for p in PACKAGE.glob("*.py")} == {"__init__.py"}
    assert {step_of(p) for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize("folder", LAYERS)
def test_each_folder_says_what_it_owns(folder):
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
    assert doc and len(doc.split()) >= 10, f"{folder}/__init__.py needs a docstring that says what it owns"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path):
    own = LAYERS.index(step_of(path))
    upward = [f"line {line}: {layer}" for line, layer in imported_layers(path) if LAYERS.index(layer) > own]
    assert not upward, f"{path.relative_to(PACKAGE)} ({LAYERS[own]}) imports from above: {upward}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The checker itself: an import of report from train is found, whatever its form."""
    module = tmp_path / "train" / "bad.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from lenet_compare.report import stats\n\nfrom lenet_compare import bench\n")
    assert imported_layers(module) == {(2, "report"), (4, "bench")}
