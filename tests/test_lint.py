"""tools/snakemake_lint.py, the `snakemake --lint` step of `make lint`, on copies of the checkout.

It must pass on the workflow as it is, whose only findings are the conda/container notes the
project declines (bare `snakemake --lint` exits 1 there), and fail on any other finding and on
a workflow Snakemake cannot even parse.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO, run

from lenet_compare.bench.pipeline import copy_checkout

WRAPPER = ["python", "tools/snakemake_lint.py"]
CONDA_NOTE = "Specify a conda environment or container for each rule."
# Snakemake's own finding for a rule without `log:`; any finding but the conda note would do.
NO_LOG = "No log directive defined"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return copy_checkout(REPO, tmp_path / "repo")


def test_passes_when_the_conda_notes_are_the_only_findings(checkout):
    bare = run(["snakemake", "--lint"], checkout, check=False)
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert CONDA_NOTE in bare.stderr

    wrapped = run(WRAPPER, checkout, check=False)
    assert wrapped.returncode == 0, wrapped.stdout + wrapped.stderr
    assert "only accepted findings" in wrapped.stdout and CONDA_NOTE in wrapped.stdout


def test_fails_on_any_other_finding(checkout):
    # A rule that writes to the terminal instead of a log: Snakemake's lint names it.
    with (checkout / "workflow" / "rules" / "data.smk").open("a") as smk:
        smk.write('\n\nrule careless:\n    output:\n        "careless.txt",\n    shell:\n        "date > {output}"\n')
    result = run(WRAPPER, checkout, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    # That finding is shown, and only it: not the accepted conda notes, the rule's own included.
    assert re.findall(r"^Lints for (rule \w+)", result.stderr, re.MULTILINE) == ["rule careless"], result.stderr
    assert re.findall(r"^    \* (.+):$", result.stderr, re.MULTILINE) == [NO_LOG], result.stderr
    assert "1 finding(s) beyond the accepted ones" in result.stderr


def test_fails_when_the_workflow_does_not_parse(checkout):
    # Snakemake exits 1 here too, with no finding at all: not a pass.
    with (checkout / "workflow" / "rules" / "report.smk").open("a") as smk:
        smk.write("\n\nrule broken\n")
    result = run(WRAPPER, checkout, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "without lint findings" in result.stderr and "SyntaxError" in result.stderr
