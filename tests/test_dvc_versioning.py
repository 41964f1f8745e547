"""DVC versions every change: a tiny real run, then no-op repro, metrics diff, a remote round trip,
and Snakemake seeing DVC's outputs as up to date."""

import hashlib
import json
import re
import shutil

import pytest
import yaml
from conftest import run

pytestmark = pytest.mark.slow

# docs/engines.md: adopting a DVC checkout in Snakemake.
RECIPE = "dvc status -q && snakemake --cores 1 --touch"


@pytest.fixture(scope="module")
def dvc_repo(dvc_tiny_run):
    """The whole tiny DAG run once by `dvc repro` and committed, as a user would (conftest)."""
    return dvc_tiny_run


def clone_of(repo, dest):
    """A copy of the run repo (cache included), for tests that change it."""
    shutil.copytree(repo, dest, symlinks=True)
    return dest


def tracked_outputs(repo):
    """sha256 of every file under data/ (what DVC caches)."""
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((repo / "data").rglob("*"))
        if p.is_file()
    }


def test_repro_right_after_a_run_does_nothing(dvc_repo):
    out = run(["dvc", "repro"], dvc_repo).stdout
    assert "Running stage" not in out
    assert "Data and pipelines are up to date" in run(["dvc", "status"], dvc_repo).stdout


def test_snakemake_sees_dvc_outputs_as_up_to_date(dvc_repo):
    out = run(["snakemake", "--cores", "1", "--dry-run"], dvc_repo)
    assert "Nothing to be done" in out.stdout + out.stderr


def test_metrics_diff_shows_a_params_change(dvc_repo, tmp_path):
    """A change of the report's margin reruns the report stage alone, and both diffs show it."""
    repo = clone_of(dvc_repo, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    margin = params["report"]["equivalence_margin"]
    params["report"]["equivalence_margin"] = 2 * margin
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo).stdout
    assert re.findall(r"^Running stage '([^']+)'", out, re.MULTILINE) == ["report"]
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    # Only the summary is a DVC metric; the margin it reports moved, the accuracies did not.
    assert list(diff) == ["reports/metrics.json"], diff
    assert diff["reports/metrics.json"]["equivalence.margin"] == {"old": margin, "new": 2 * margin, "diff": margin}
    assert not any(key.startswith("accuracy.") for key in diff["reports/metrics.json"])
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)
    assert params_diff["params.yaml"]["report.equivalence_margin"] == {"old": margin, "new": 2 * margin, "diff": margin}


def test_remote_round_trip_is_byte_identical(dvc_repo, tmp_path):
    repo = clone_of(dvc_repo, tmp_path / "repo")
    before = tracked_outputs(repo)
    assert any(k.startswith("data/models/") for k in before) and any(k.startswith("data/prepared/") for k in before)
    run(["dvc", "remote", "add", "--default", "store", str(tmp_path / "remote")], repo)
    run(["dvc", "push"], repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data")
    run(["dvc", "pull"], repo)
    assert tracked_outputs(repo) == before
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_after_dvc_checkout_snakemake_touch_makes_it_up_to_date(dvc_repo, tmp_path):
    """DVC does not keep modification times; the README's fix is `snakemake --touch`."""
    repo = clone_of(dvc_repo, tmp_path / "repo")
    shutil.rmtree(repo / "data")
    run(["dvc", "checkout"], repo)  # rewrites every output with new, arbitrary-order times
    assert "up to date" in run(["dvc", "status"], repo).stdout
    stale = run(["snakemake", "--cores", "1", "--dry-run"], repo)
    assert "Nothing to be done" not in stale.stdout + stale.stderr  # what users would hit
    run(RECIPE, repo)  # docs/engines.md's recipe, as a user types it
    fresh = run(["snakemake", "--cores", "1", "--dry-run"], repo)
    assert "Nothing to be done" in fresh.stdout + fresh.stderr
    assert "up to date" in run(["dvc", "status"], repo).stdout  # touching changed no content


def test_the_recipe_never_touches_stale_outputs(dvc_repo, tmp_path):
    """The recipe relies on exit codes: `dvc status` exits 0 even when a stage changed, only
    `dvc status -q` exits 1 then, so `--touch` runs only on an up-to-date checkout."""
    repo = clone_of(dvc_repo, tmp_path / "repo")
    shutil.rmtree(repo / ".snakemake", ignore_errors=True)  # other tests ran Snakemake in dvc_repo
    assert run(["dvc", "status", "-q"], repo, check=False).returncode == 0
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["epochs"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run(["dvc", "status"], repo, check=False)
    assert status.returncode == 0 and "changed" in status.stdout  # why the recipe needs -q
    assert run(["dvc", "status", "-q"], repo, check=False).returncode == 1
    recipe = run(RECIPE, repo, check=False)
    assert recipe.returncode == 1
    assert not (repo / ".snakemake").exists()  # Snakemake never ran, so it marked nothing current


def test_after_a_snakemake_run_dvc_commit_adopts_the_outputs(snakemake_tiny_run, tmp_path):
    """A Snakemake run leaves DVC without a record; `dvc commit --force` adopts it unchanged."""
    repo = clone_of(snakemake_tiny_run[0], tmp_path / "repo")  # conftest's shared Snakemake run
    assert "changed" in run(["dvc", "status"], repo).stdout
    before = tracked_outputs(repo)
    run(["dvc", "commit", "--force"], repo)
    assert "up to date" in run(["dvc", "status"], repo).stdout
    assert "Running stage" not in run(["dvc", "repro"], repo).stdout
    assert tracked_outputs(repo) == before
