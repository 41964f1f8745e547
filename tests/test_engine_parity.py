"""One DAG, two engines: Snakemake and DVC would run exactly the same command lines."""

import re

import pytest
from conftest import default_params, make_workspace, run, tiny_params, write_params

from lenet_compare.core.frameworks import FRAMEWORKS

SNAKEMAKE_SHELL = re.compile(r"^Shell command: (?!None$)(.+)$", re.MULTILINE)
BENCHMARK_DVC = "workflow/benchmark/dvc.yaml"
DVC_STAGE = re.compile(r"^Running stage '([^']+)':\n> (.+)$", re.MULTILINE)


def snakemake_commands(cwd):
    out = run(["snakemake", "--cores", "1", "--dry-run", "--printshellcmds", "--forceall"], cwd).stdout
    return sorted(SNAKEMAKE_SHELL.findall(out))


def dvc_commands(cwd):
    out = run(["dvc", "repro", "--dry", "--force"], cwd).stdout
    return sorted(cmd for _stage, cmd in DVC_STAGE.findall(out))


@pytest.mark.parametrize("params", ["default", "tiny", "every framework"])
def test_both_engines_run_the_same_command_lines(params, workspace):
    if params == "default":  # the default frameworks x all default seeds
        write_params(workspace / "params.yaml", default_params())
    if params == "every framework":  # every framework the project knows (jax too), 2 seeds
        write_params(workspace / "params.yaml", tiny_params(frameworks=list(FRAMEWORKS), seeds=[0, 1]))
    snakemake, dvc = snakemake_commands(workspace), dvc_commands(workspace)
    assert snakemake, "Snakemake planned no shell command"
    assert len(set(snakemake)) == len(snakemake), "a command line would run twice"
    assert snakemake == dvc


def test_every_step_is_a_script_command_line(workspace):
    for cmd in dvc_commands(workspace):
        assert re.fullmatch(r"python workflow/scripts/\w+\.py( --[\w-]+ \S+)*", cmd), cmd


def test_the_benchmark_runs_the_same_command_line_in_both_engines(tmp_path):
    """The benchmark is outside both default targets; its own targets agree too."""
    workspace = make_workspace(tmp_path / "ws", keep_benchmark=True)
    out = run(
        ["snakemake", "--cores", "1", "--dry-run", "--printshellcmds", "--forceall", "benchmark"], workspace
    ).stdout
    snakemake = SNAKEMAKE_SHELL.findall(out)
    dvc = run(["dvc", "repro", "--dry", "--force", "--single-item", BENCHMARK_DVC], workspace).stdout
    assert snakemake[-1:] == [cmd for _stage, cmd in DVC_STAGE.findall(dvc)]
    # ...and neither engine's default run includes it
    assert not any("benchmark.py" in cmd for cmd in snakemake_commands(workspace) + dvc_commands(workspace))
