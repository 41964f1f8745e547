"""Live per-epoch metrics of a training job, in DVCLive's format (docs/live-metrics.md).

After each epoch the epoch loop (train/loop.py) appends the epoch's losses, accuracies and
training time to a DVCLive folder, so a running job can be watched with ``dvc plots show`` or
the VS Code DVC extension. history.csv, written when the run is done, stays the report's input.

The checkpoint (train/checkpoints.py) is the one record of which epochs are done. Each time a
job starts, its live folder is emptied and the epochs its checkpoints hold are logged again,
then training carries on at the next epoch. So after any interruption each epoch is in the
folder exactly once, with the values history.csv will hold, whatever the folder held before:

- epochs a killed process logged are kept only if its checkpoint holds them (the loop logs an
  epoch after its checkpoint is written, so a kill in between loses only the log line, which
  the next start writes from the checkpoint);
- Snakemake deletes a failed job's outputs and DVC a stage's outputs before it runs, so a
  rerun usually finds no folder at all: the checkpoint is all there is to resume from.

DVCLive's own ``resume=True`` cannot do this: it carries on after the step in the folder's
metrics.json (and after exactly one logged step it starts at that step again, logging it
twice), knows nothing of our checkpoints, and has nothing to read once the folder is gone.
Each epoch is logged at step = epoch (1, 2, ...), like history.csv's ``epoch`` column, so the
steps carry on across restarts without reading anything back.

DVCLive is imported only when a folder is opened: the epoch loop's module stays light, and
DVCLive imports neither torch nor tensorflow (a job imports exactly one framework).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# DVCLive metric name (its file: plots/metrics/{name}.tsv) -> the history row's key.
METRICS = {
    "train/loss": "train_loss",
    "train/accuracy": "train_accuracy",
    "val/loss": "val_loss",
    "val/accuracy": "val_accuracy",
    "epoch_seconds": "epoch_seconds",
}


class LiveMetrics:
    """One training run's DVCLive folder, emptied when its job starts; ``run()`` logs the run into it.

    Every job trains one run (a main run, or one ablation run), so a folder holds one run's
    files, plots/metrics/{train,val}/{loss,accuracy}.tsv, epoch_seconds.tsv and metrics.json,
    whichever step wrote it (lenet_compare.core.layout: RUN["live"], ABLATION_LIVE).
    """

    def __init__(self, folder: Path):
        from dvclive import Live

        # Emptied by us, not by DVCLive: its clean-up is skipped when DVCLIVE_RESUME is set in
        # the environment, and it leaves files it does not know of.
        shutil.rmtree(folder, ignore_errors=True)
        self.folder = Path(folder)
        self._live = Live(
            str(folder),
            resume=False,  # the folder is rebuilt from the checkpoint instead (module docstring)
            report=None,  # no report.html / report.md: dvc plots show renders the files
            save_dvc_exp=False,  # many jobs run at once; an experiment per job would be noise
            dvcyaml=False,  # dvc.yaml declares the plots; DVCLive must not write one
        )

    def run(self) -> LiveRun:
        """The logger of the folder's training run: its files straight under plots/metrics/."""
        return LiveRun(self._live)

    def close(self) -> None:
        # Writes the final metrics.json and clears DVCLive's step signal for the VS Code extension.
        self._live.end()


class LiveRun:
    """Logs one training run's epochs, each at step = epoch."""

    def __init__(self, live):
        self._live = live

    def log_epoch(self, row: dict) -> None:
        """One history row (train/loop.py); appends one line to each metric's .tsv file."""
        self._live.step = row["epoch"]
        for name, key in METRICS.items():
            self._live.log_metric(name, row[key])
        # Writes metrics.json (the latest values) and tells the VS Code extension a step is done.
        self._live.next_step()

    def replay(self, rows: list[dict]) -> None:
        """Log the epochs a checkpoint holds, when a job resumes; nothing when it starts afresh."""
        for row in rows:
            self.log_epoch(row)


@contextmanager
def logging_to(folder: Path | None) -> Iterator[LiveMetrics | None]:
    """The run's LiveMetrics for ``folder``, closed at the end; None when no folder is given."""
    if folder is None:
        yield None
        return
    metrics = LiveMetrics(folder)
    try:
        yield metrics
    finally:
        metrics.close()
