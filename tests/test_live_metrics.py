"""Live per-epoch metrics (DVCLive, docs/live-metrics.md): each epoch exactly once, with
history.csv's values, whatever an interruption left in the folder; DVC draws them.

The first tests drive the real epoch loop, checkpoints and DVCLive with a stand-in trainer (no
framework, a second each). tests/test_resume.py kills real training with SIGKILL; the slow
tests here run the tiny pipeline under `dvc repro` and render the plots with `dvc plots show`.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, default_params, run, tiny_params

from lenet_compare.ablation import factors
from lenet_compare.core import layout
from lenet_compare.core.article import PAIR
from lenet_compare.train import checkpoints, live, loop

# The layout docs/live-metrics.md promises: file under plots/metrics/ -> history.csv column.
LIVE_FILES = {
    "train/loss": "train_loss",
    "train/accuracy": "train_accuracy",
    "val/loss": "val_loss",
    "val/accuracy": "val_accuracy",
    "epoch_seconds": "epoch_seconds",
}
COLUMNS = ("epoch", *LIVE_FILES.values())


def live_epochs(folder: Path) -> list[tuple[str, ...]]:
    """A run's live folder's epochs as history.csv rows (the COLUMNS), one per line of its .tsv
    files, in file order: an epoch logged twice comes back twice, a missing one not at all."""
    per_file = []
    for name in LIVE_FILES:
        with open(Path(folder, "plots", "metrics", f"{name}.tsv"), newline="") as f:
            per_file.append([(row["step"], row[name.split("/")[-1]]) for row in csv.DictReader(f, delimiter="\t")])
    lengths = {len(lines) for lines in per_file}
    assert len(lengths) == 1, f"the .tsv files of {folder} have {lengths} lines"
    epochs = []
    for lines in zip(*per_file, strict=True):
        steps = {step for step, _ in lines}
        assert len(steps) == 1, f"one line of {folder}'s .tsv files has the steps {steps}"
        epochs.append((steps.pop(), *(value for _, value in lines)))
    return epochs


def as_text(rows: list[dict]) -> list[tuple[str, ...]]:
    """History rows as history.csv writes them (repr of each float): what the .tsv files must hold."""
    return [tuple(repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) for r in rows]


def history_csv_rows(path: Path) -> list[tuple[str, ...]]:
    with open(path, newline="") as f:
        return [tuple(row[c] for c in COLUMNS) for row in csv.DictReader(f)]


@pytest.fixture(autouse=True)
def outside_the_checkout(tmp_path, monkeypatch):
    """DVCLive looks for a DVC repository from the working directory up (and signals VS Code in
    its .dvc/tmp): the tests' own DVCLive runs stay out of this checkout's."""
    monkeypatch.chdir(tmp_path)


# ----------------------------------------------------------------------------------------------
# The epoch loop with a stand-in trainer: every state an interruption can leave behind


class FakeTrainer:
    """What train/loop.py needs of a backend's Trainer; its numbers depend only on the epoch,
    like a deterministic real run's, so a resumed run must log the same values."""

    def __init__(self):
        self.epochs_done = 0

    def train_epoch(self, epoch, progress=None):
        self.epochs_done = epoch
        return 1.0 / (epoch + 0.5), 1.0 - 0.3 / epoch, 0.25 * epoch

    def canonical_weights(self):
        return {"w": np.full(3, float(self.epochs_done))}

    def predict(self, x):
        return np.outer(np.ones(len(x)), np.arange(10.0) * self.epochs_done)

    def save_checkpoint(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(self.epochs_done))

    def load_checkpoint(self, path: Path):
        self.epochs_done = int(path.read_text())


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs in the job (BaseException: no handler catches it)."""


EPOCHS = 4
X_VAL, Y_VAL = np.zeros((6, 1)), np.arange(6) % 10


def job(root: Path, run_name: str = "") -> list[dict]:
    """One training job as the steps run it: its run's live folder (root/live, or root/live/{run_name}
    for an ablation run), then the run, resumed from its checkpoint when there is one; its history rows."""
    with live.logging_to(root / "live" / run_name) as live_metrics:
        saved = checkpoints.Checkpoints(root / "checkpoints" / run_name, "key")
        return loop.run_epochs(FakeTrainer(), {"epochs": EPOCHS}, X_VAL, Y_VAL, 1, saved, live=live_metrics.run())


def kill_at(monkeypatch, where: str, epoch: int, run_name: str = "") -> None:
    """Make the next job die in epoch ``epoch`` of run ``run_name``: just before the epoch's
    checkpoint, or between its checkpoint and its live line."""
    save, log_epoch = checkpoints.Checkpoints.save, live.LiveRun.log_epoch
    doomed = {"epoch": None}  # set once the epoch's checkpoint is saved: its live line comes next

    def save_or_die(self, trainer, rows):
        if self.folder.name == (run_name or "checkpoints") and rows[-1]["epoch"] == epoch:
            if where == "before the checkpoint":
                raise Killed
            doomed["epoch"] = epoch
        save(self, trainer, rows)

    def log_or_die(self, row):
        if doomed["epoch"] == row["epoch"]:
            raise Killed
        log_epoch(self, row)

    monkeypatch.setattr(checkpoints.Checkpoints, "save", save_or_die)
    monkeypatch.setattr(live.LiveRun, "log_epoch", log_or_die)


def append_line(folder: Path, epoch: int, value: str = "0.123") -> None:
    """A line for ``epoch`` at the end of every .tsv file, as a process that logged it and died would leave."""
    for name in LIVE_FILES:
        with open(folder / "plots" / "metrics" / f"{name}.tsv", "a") as f:
            f.write(f"{epoch}\t{value}\n")


@pytest.mark.parametrize("where", ["before the checkpoint", "before the live line"])
def test_a_job_killed_in_an_epoch_logs_each_epoch_once_after_the_rerun(where, tmp_path, monkeypatch):
    uninterrupted = job(tmp_path / "whole")
    with monkeypatch.context() as m:
        kill_at(m, where, epoch=3)
        with pytest.raises(Killed):
            job(tmp_path / "killed")
    saved = json.loads((tmp_path / "killed" / "checkpoints" / "progress.json").read_text())["rows"]
    logged = live_epochs(tmp_path / "killed" / "live")
    # The kill left the checkpoint and the live folder where `where` says.
    assert len(saved) == (2 if where == "before the checkpoint" else 3)
    assert len(logged) == 2

    assert as_text(job(tmp_path / "killed")) == as_text(uninterrupted)  # val_seconds aside: a timing
    assert live_epochs(tmp_path / "killed" / "live") == as_text(uninterrupted)


@pytest.mark.parametrize(
    "leftover",
    [
        "no folder",  # Snakemake deletes a failed job's outputs, DVC a stage's before it runs
        "an epoch past the checkpoint",  # logged, then killed before its checkpoint was complete
        "a half-written line",  # killed while appending
        "a finished run",  # the step run again by hand, its checkpoint removed on success
    ],
)
def test_a_rerun_replaces_what_the_folder_held(leftover, tmp_path, monkeypatch):
    whole = job(tmp_path / "whole")
    root, folder = tmp_path / "rerun", tmp_path / "rerun" / "live"
    if leftover == "a finished run":
        job(root)
        checkpoints.Checkpoints(root / "checkpoints", "").remove()
    else:
        with monkeypatch.context() as m:
            kill_at(m, "before the checkpoint", epoch=3)
            with pytest.raises(Killed):
                job(root)
        if leftover == "no folder":
            shutil.rmtree(folder)
        elif leftover == "an epoch past the checkpoint":
            append_line(folder, 3)
        else:
            with open(folder / "plots" / "metrics" / "val" / "loss.tsv", "a") as f:
                f.write("3\t0.4")
    job(root)
    assert live_epochs(folder) == as_text(whole)
    summary = json.loads((folder / "metrics.json").read_text())
    assert summary["step"] == EPOCHS and summary["val"]["loss"] == whole[-1]["val_loss"]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """A folder's files and bytes, less the marker Snakemake leaves in a directory output (.gitignore'd,
    so a fresh clone has none while a checkout that ran the pipeline has one)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".snakemake_timestamp"
    }


def test_each_ablation_run_is_a_job_that_logs_into_its_own_folder(tmp_path, monkeypatch):
    """workflow/scripts/ablation_train.py trains one run per job, each with its own live folder
    (reports/ablation/live/{framework}/seed{seed}/{run}): a run killed in its second epoch resumes
    into its folder, straight under plots/metrics/, and leaves the other run's folder alone."""
    runs = ("article", "init")
    whole = {name: job(tmp_path / "whole", name) for name in runs}
    root = tmp_path / "killed"
    job(root, "article")
    article = folder_bytes(root / "live" / "article")
    with monkeypatch.context() as m:
        kill_at(m, "before the live line", epoch=2, run_name="init")
        with pytest.raises(Killed):
            job(root, "init")
    assert len(live_epochs(root / "live" / "init")) == 1
    assert as_text(job(root, "init")) == as_text(whole["init"])
    for name in runs:
        assert live_epochs(root / "live" / name) == as_text(whole[name])
        assert {p.name for p in (root / "live" / name / "plots" / "metrics").iterdir()} == {
            "train", "val", "epoch_seconds.tsv"
        }  # fmt: skip
        assert json.loads((root / "live" / name / "metrics.json").read_text())["step"] == EPOCHS
    assert folder_bytes(root / "live" / "article") == article


def test_the_committed_ablation_live_folders_are_what_dvclive_writes_of_each_run(tmp_path):
    """Each ablation run's job wrote its run's live folder as it trained (the article's pair only:
    the ablation trains no other framework). Replaying the run's recorded history through DVCLive
    gives exactly those files, byte for byte: the folders hold what the records say, nothing else."""
    params = default_params()
    for f in PAIR:
        for s in params["ablation"]["seeds"]:
            for rid in factors.runs_to_train(params, f):
                where = {"framework": f, "seed": s, "run": rid}
                record = json.loads((REPO / layout.ablation_run_file(f, s, rid)).read_text())
                with live.logging_to(tmp_path / rid) as metrics:
                    metrics.run().replay(record["history"])
                committed = folder_bytes(REPO / layout.ABLATION_LIVE.format(**where))
                assert folder_bytes(tmp_path / rid) == committed, where
                assert len(committed) == 1 + len(LIVE_FILES)


# ----------------------------------------------------------------------------------------------
# What DVCLive may and may not do: no framework import, no report, no dvc.yaml, no git


DVCLIVE_JOB = """
import sys
from pathlib import Path
from lenet_compare.train import live
row = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7, "epoch_seconds": 2.0}
with live.logging_to(Path("reports/live")) as metrics:
    metrics.run().log_epoch(row)
print(sorted(m for m in ("torch", "tensorflow", "keras") if m in sys.modules))
"""


def test_dvclive_writes_only_its_files_and_touches_no_git(tmp_path):
    """In a DVC repository with a commit: where DVCLive would save an experiment (git refs),
    write a dvc.yaml or a report if it were let."""
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        run(cmd, tmp_path)
    (tmp_path / ".gitignore").write_text("/reports/\n")
    run(["git", "add", "-A"], tmp_path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], tmp_path)
    refs_before = run(["git", "for-each-ref"], tmp_path).stdout

    result = run([sys.executable, "-c", DVCLIVE_JOB], tmp_path)
    assert result.stdout.strip() == "[]"  # neither framework imported by DVCLive
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert files == ["reports/live/metrics.json"] + [f"reports/live/plots/metrics/{n}.tsv" for n in sorted(LIVE_FILES)]
    assert run(["git", "for-each-ref"], tmp_path).stdout == refs_before  # no experiment saved
    assert run(["git", "status", "--porcelain"], tmp_path).stdout == ""
    assert not (tmp_path / "dvc.yaml").exists()


# ----------------------------------------------------------------------------------------------
# The tiny pipeline under `dvc repro`, drawn by `dvc plots show`

# The tiny params' frameworks (every one: the default list) train main runs; the ablation has
# runs of the article's pair only.
FRAMEWORKS = tuple(tiny_params()["frameworks"])


@pytest.fixture(scope="module")
def dvc_run(dvc_tiny_run) -> Path:
    """The tiny params' whole DAG (seed 0, every framework, the ablation), by `dvc repro` (conftest)."""
    return dvc_tiny_run


@pytest.mark.slow
def test_dvc_repro_logs_every_run_epoch_by_epoch(dvc_run):
    params = tiny_params()
    for framework in FRAMEWORKS:
        runs = dvc_run / "reports" / "runs" / framework / "seed0"
        assert live_epochs(runs / "live") == history_csv_rows(runs / "history.csv")
    for framework in PAIR:
        names = factors.runs_to_train(params, framework)
        for name in names:
            record = json.loads((dvc_run / layout.ablation_run_file(framework, 0, name)).read_text())
            folder = dvc_run / layout.ABLATION_LIVE.format(framework=framework, seed=0, run=name)
            assert live_epochs(folder) == as_text(record["history"]), name
        assert {p.name for p in folder.parent.iterdir()} == set(names)  # one folder per run, no other


@pytest.mark.slow
def test_dvc_plots_show_draws_the_live_files(dvc_run, tmp_path):
    shown = json.loads(run(["dvc", "plots", "show", "--json"], dvc_run).stdout)
    # Every plot loaded: the report's, each run's and the live overlays.
    assert not shown.get("errors"), shown.get("errors")
    for framework in FRAMEWORKS:
        history = history_csv_rows(dvc_run / "reports" / "runs" / framework / "seed0" / "history.csv")
        for name, column in LIVE_FILES.items():
            path = f"reports/runs/{framework}/seed0/live/plots/metrics/{name}.tsv"
            values = shown["data"][path][0]["content"]["data"]["values"]
            expected = [(h[0], h[COLUMNS.index(column)]) for h in history]
            assert [(v["step"], v[name.split("/")[-1]]) for v in values] == expected, path
    for framework in PAIR:
        ablation = dvc_run / "reports" / "ablation" / "live" / framework / "seed0"
        runs = factors.runs_to_train(tiny_params(), framework)
        assert len(list(ablation.rglob("*.tsv"))) == len(runs) * len(LIVE_FILES)  # one folder per run
        for tsv in ablation.rglob("*.tsv"):
            assert str(tsv.relative_to(dvc_run)) in shown["data"]
    # The overlays (dvc.yaml's top-level plots): every framework's train and validation curves in
    # one plot each.
    n = len(FRAMEWORKS)
    for plot_id, series in {"live_loss": 2 * n, "live_accuracy": 2 * n, "live_epoch_seconds": n}.items():
        values = shown["data"][plot_id][0]["content"]["data"]["values"]
        assert len({v["filename"] for v in values}) == series, plot_id
        assert len(values) == series * 2  # two epochs each

    out = tmp_path / "plots"
    run(["dvc", "plots", "show", "-o", str(out)], dvc_run)
    html = (out / "index.html").read_text()
    for title in ("Training and validation loss per epoch, live (seed 0)", "Seconds per training epoch, live (seed 0)"):
        assert title in html
    for framework in FRAMEWORKS:
        assert f"reports/runs/{framework}/seed0/live/plots/metrics/val/accuracy.tsv" in html
