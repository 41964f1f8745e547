"""Each step's code and params, written once per engine, and both engines' lists kept true.

The rule (docs/design.md, "What a step depends on"): a step lists every lenet_compare module its
script imports, transitively, and the templates it renders; a change to any of them reruns the
step. workflow/rules/common.smk holds Snakemake's lists (CODE, PARAMS); dvc.yaml holds DVC's.
- The modules a step's script really loads, in a fresh process, are exactly its CODE list.
- Every Snakemake rule's inputs and params are its DVC stage's deps and params (paths from the
  run layout, lenet_compare.core.layout), so dropping a module from one engine fails here.
Nothing here trains or runs a step: each check parses the workflow or imports a script.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run

from lenet_compare.ablation.factors import runs_to_train
from lenet_compare.bench.pipeline import copy_checkout
from lenet_compare.core import article, layout
from lenet_compare.core.frameworks import FRAMEWORKS, get

PACKAGE = REPO / "src" / "lenet_compare"

# Loads the workflow as Snakemake does and prints each rule's inputs (patterns; an input
# function is called) and params' names, and common.smk's CODE and PARAMS.
PROBE = """include: "Snakefile"


import json
from argparse import Namespace

from lenet_compare.core.frameworks import FRAMEWORKS

# An input function (a job's own backend) is called for the first framework's jobs; the test
# puts that framework in place of "{framework}" wherever it compares.
WILDCARDS = Namespace(framework=FRAMEWORKS[0], seed="0", run="article")


def _inputs(rule):
    out = {}
    for name, value in rule.input._allitems():
        if name is None:
            continue
        value = value(WILDCARDS) if callable(value) else value
        out[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return out


print("STEPS " + json.dumps({
    "code": CODE,
    "params": PARAMS,
    "rules": {r.name: {"input": _inputs(r), "params": list(r.params.keys())} for r in workflow.rules},
}))
"""


@cache
def snakemake_steps(tmp_root: str) -> dict:
    repo = copy_checkout(REPO, Path(tmp_root) / "repo")
    (repo / "probe.smk").write_text(PROBE)
    out = run(["snakemake", "-s", "probe.smk", "--list-rules"], repo).stdout
    return json.loads(re.search(r"^STEPS (.*)$", out, re.MULTILINE)[1])


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> dict:
    return snakemake_steps(str(tmp_path_factory.mktemp("probe")))


# ----------------------------------------------------------------------------------------------
# What each step's script loads

# Loads a step's script as a module (its main() does not run), the backends it would import
# for the frameworks given, and the modules each loaded module imports inside a function
# (lazily), until nothing new loads; prints every lenet_compare module loaded.
LOADER = r"""
import ast, importlib, runpy, sys
script, entries = sys.argv[1], sys.argv[2:]
sys.argv = [script]
runpy.run_path(script, run_name="step_script")
for name in entries:
    importlib.import_module(name)


def import_what(path):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lenet_compare"):
            for alias in node.names:
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    importlib.import_module(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lenet_compare"):
                    importlib.import_module(alias.name)


import_what(script)
seen = set()
while todo := sorted({m for m in sys.modules if m.startswith("lenet_compare.")} - seen):
    for name in todo:
        seen.add(name)
        if path := getattr(sys.modules[name], "__file__", None):
            import_what(path)
print("\n".join(sorted(m for m in sys.modules if m.startswith("lenet_compare."))))
"""


def loaded_modules(script: str, entries: list[str]) -> set[str]:
    """The package's module files a fresh process loads for ``script`` (package __init__s left out)."""
    out = subprocess.run(
        [sys.executable, "-c", LOADER, script, *entries], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    files = set()
    for name in out.split():
        path = PACKAGE.joinpath(*name.split(".")[1:])
        if path.with_suffix(".py").is_file():
            files.add(path.with_suffix(".py").relative_to(REPO).as_posix())
    return files


def backend(framework: str) -> str:
    return get(framework).backend_module


def backend_files(framework: str) -> set[str]:
    """A framework's backend folder, as the engines list it: every module in it."""
    return {p.relative_to(REPO).as_posix() for p in (REPO / get(framework).backend_dir).glob("*.py")}


# step -> (script, [(framework or None, the modules a job of it imports beyond the script)]).
JOBS = {
    "download": [(None, [])],
    "prepare": [(None, [])],
    "init": [(None, [])],
    "train": [(f, [backend(f)]) for f in FRAMEWORKS],
    "evaluate": [(f, [backend(f)]) for f in FRAMEWORKS],
    "ablation_train": [(f, [backend(f)]) for f in article.PAIR],
    "ablation": [(None, [])],
    "report": [(None, [])],
    # The benchmark's child processes: lenet_compare.bench.training, one framework each.
    "benchmark": [(None, ["lenet_compare.bench.training", *map(backend, FRAMEWORKS)])],
}
SCRIPTS = {step: "workflow/scripts/ablation_report.py" if step == "ablation" else f"workflow/scripts/{step}.py"
           for step in JOBS}  # fmt: skip


@pytest.mark.parametrize(
    ("step", "framework", "entries"),
    [(step, f, entries) for step, jobs in JOBS.items() for f, entries in jobs],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_step_lists_every_module_its_script_loads(steps, step, framework, entries):
    listed = {p.replace("{framework}", framework or "") for p in steps["code"][step] if p.endswith(".py")}
    if framework is not None:  # the job's own backend: the rule's input `backend` (common.smk's backend_code)
        listed |= backend_files(framework)
    loaded = loaded_modules(SCRIPTS[step], entries)
    assert loaded - listed == set(), f"{step}: loaded but not listed in common.smk's CODE"
    assert listed - loaded == set(), f"{step}: listed in common.smk's CODE but never loaded"


def test_every_step_has_a_code_list(steps):
    assert set(JOBS) == set(steps["code"]) == set(steps["params"])
    for step, files in steps["code"].items():
        missing = [f for f in files if not (REPO / f.replace("{framework}", "torch")).is_file()]
        assert not missing, f"{step} lists files that do not exist: {missing}"


def test_package_init_files_hold_only_a_docstring():
    """The lists leave out the package's __init__.py files: they must hold no code to depend on."""
    for init in PACKAGE.rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body), init


def test_the_loader_sees_a_lazy_import(tmp_path):
    """The check itself: a module imported only inside a function still counts as loaded."""
    script = tmp_path / "step.py"
    script.write_text(
        "def main():\n    from lenet_compare.train import scores\n\n\nfrom lenet_compare.core import errors\n"
    )
    assert {"src/lenet_compare/train/scores.py", "src/lenet_compare/core/errors.py"} <= loaded_modules(str(script), [])


# ----------------------------------------------------------------------------------------------
# Snakemake's rules against DVC's stages

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
BENCHMARK_DVC = yaml.safe_load((REPO / "workflow/benchmark/dvc.yaml").read_text())["stages"]
# dvc.yaml's matrix items, as Snakemake's wildcards.
ITEMS = {
    "${item.framework}": "{framework}",
    "${item.seed}": "{seed}",
    "${item.job.framework}": "{framework}",
    "${item.job.run}": "{run}",
}


def stage(step: str) -> dict:
    return BENCHMARK_DVC[step] if step == "benchmark" else DVC[step]


def as_pattern(path: str) -> str:
    for item, wildcard in ITEMS.items():
        path = path.replace(item, wildcard)
    return path


def dvc_deps(step: str) -> list[str]:
    return [as_pattern(next(iter(d)) if isinstance(d, dict) else d) for d in stage(step)["deps"]]


def code_files(path: str) -> list[str]:
    """A code dependency as files: a folder of modules (a backend's) as the modules in it, package
    __init__ files left out as in the engines' lists."""
    folder = REPO / path
    if not path.startswith("src/") or not folder.is_dir():
        return [path]
    return sorted(p.relative_to(REPO).as_posix() for p in folder.rglob("*.py") if p.name != "__init__.py")


def covered(path: str, deps: list[str]) -> bool:
    """A rule's input is one of the stage's deps, or a file under a folder the stage depends on."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("step", list(JOBS))
def test_each_rule_and_its_stage_depend_on_the_same_files(steps, step):
    rule = steps["rules"][step]["input"]
    # The rule's inputs as called for the first framework's jobs (PROBE's WILDCARDS).
    deps = [d.replace("{framework}", FRAMEWORKS[0]) for d in dvc_deps(step)]
    inputs = [p.replace("{framework}", FRAMEWORKS[0]) for files in rule.values() for p in files]
    # The code, the script and the data files: the same entries, each once.
    code = sorted(p for p in inputs if p.startswith(("src/", "workflow/scripts/")))
    assert code == sorted(f for d in deps if d.startswith(("src/", "workflow/scripts/")) for f in code_files(d))
    assert not [p for p in inputs if not covered(p, deps)], "a rule input that the DVC stage does not depend on"
    assert all(any(covered(p, [d]) for p in inputs) for d in deps), "a DVC dep that no rule input is"


@pytest.mark.parametrize("step", list(JOBS))
def test_each_rule_and_its_stage_read_the_same_params(steps, step):
    assert sorted(steps["params"][step]) == sorted(stage(step).get("params", []))
    # ...and the rule really declares them (common.smk's params_of).
    names = set(steps["rules"][step]["params"])
    assert {key.replace(".", "_") for key in steps["params"][step]} <= names


def test_dvc_runs_each_ablation_run_that_the_factors_name():
    jobs = DVC["ablation_train"]["matrix"]["job"]
    assert [(j["framework"], j["run"]) for j in jobs] == [
        (f, run) for f in article.PAIR for run in runs_to_train(yaml.safe_load((REPO / "params.yaml").read_text()), f)
    ]


# ----------------------------------------------------------------------------------------------
# The run layout in dvc.yaml


def test_dvc_yaml_writes_the_run_layout():
    """dvc.yaml cannot import the layout module: its commands and outputs must spell the same paths."""
    train = as_pattern(DVC["train"]["cmd"])
    for key in ("history", "run", "live"):
        assert layout.RUN[key] in train
    assert layout.MODEL_DIR in train and layout.CHECKPOINT_DIR in train and layout.INIT in train
    evaluate = as_pattern(DVC["evaluate"]["cmd"])
    assert layout.PREDICTIONS in evaluate and layout.RUN["metrics"] in evaluate
    ablation = as_pattern(DVC["ablation_train"]["cmd"])
    for pattern in (layout.ABLATION_RUN, layout.ABLATION_LIVE, layout.ABLATION_MODEL_DIR):
        assert pattern in ablation
    assert layout.ABLATION_CHECKPOINT_DIR in ablation
    for step, folders in {"ablation": (layout.ABLATION_RUNS_DIR, layout.RUNS_DIR),
                          "report": (layout.RUNS_DIR, layout.PREDICTIONS_DIR)}.items():  # fmt: skip
        deps = dvc_deps(step)
        assert all(f in deps and f" {f} " in DVC[step]["cmd"] for f in folders), step
