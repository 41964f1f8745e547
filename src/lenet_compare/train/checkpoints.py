"""Per-epoch checkpoints of a training run, and what they must match to be resumed.

After every epoch the weights, the optimizer state and the history so far go to a checkpoint
folder that is *not* an output of the step (Snakemake deletes a failed job's outputs, DVC a
stage's outputs before it runs). When the step runs again with the same framework, seed,
params, data, code and libraries, it resumes after the last finished epoch. Each epoch's data
order and any randomness depend only on (seed, epoch) (train/minibatches.py), so on a CPU with
train.deterministic a resumed run ends with the same weights as an uninterrupted one
(tests/test_resume.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lenet_compare.core import cli
from lenet_compare.core.atomic import write_json
from lenet_compare.train.trainer import CHECKPOINT_SUFFIX

if TYPE_CHECKING:
    from lenet_compare.train.protocol import Trainer

PROGRESS_FILE = "progress.json"


def fingerprint(
    framework: str,
    seed: int,
    model: dict,
    train: dict,
    x: np.ndarray,
    y: np.ndarray,
    version: str,
    code: Iterable[Path],
) -> str:
    """What a checkpoint must match to be resumed: framework, seed, every training param, the
    data, the training code and the libraries that run it.

    ``code`` is the files of the modules a training step runs (job.training_code): a changed
    epoch loop, backend, data order, scoring, divergence check or spec must not continue
    weights that older code trained.
    The versions are the framework's (``version``: its backend's VERSION) and numpy's, which
    draws the shared order and initial weights. train.device is left out on purpose: resuming a
    GPU run on a CPU (or back) is allowed.
    """
    h = hashlib.sha256()
    settings = {k: v for k, v in train.items() if k != "device"}
    versions = {"framework": version, "numpy": np.__version__}
    h.update(json.dumps([framework, seed, model, settings, versions], sort_keys=True).encode())
    for path in code:
        h.update(Path(path).read_bytes())
    for a in (x, y):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


class Checkpoints:
    """One run's checkpoint folder: progress.json names the newest complete state file."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key, self.suffix = Path(folder), key, CHECKPOINT_SUFFIX
        self.resumed_after = 0  # epochs loaded from a checkpoint

    def resume(self, trainer: Trainer) -> list[dict]:
        """Load the newest matching checkpoint into ``trainer``; the history rows it covers."""
        progress_path = self.folder / PROGRESS_FILE
        if not progress_path.is_file():
            return []
        try:
            progress = json.loads(progress_path.read_text())
            if progress.get("key") != self.key:
                cli.log.warning(
                    "ignoring %s: it was written for other params, data, code or library versions", self.folder
                )
                return []
            trainer.load_checkpoint(self.folder / progress["state"])
        except Exception as e:  # a damaged checkpoint only costs the epochs it saved
            cli.log.warning(
                "ignoring the checkpoint in %s (%s: %s); training from the start", self.folder, type(e).__name__, e
            )
            return []
        rows = progress["rows"]
        self.resumed_after = len(rows)
        cli.log.info("resuming after epoch %d from %s", rows[-1]["epoch"], self.folder)
        return rows

    def save(self, trainer: Trainer, rows: list[dict]) -> None:
        # The state file is written first, under a new name, then progress.json points to it:
        # an interruption at any moment leaves a consistent pair behind.
        state = f"state-epoch{rows[-1]['epoch']}{self.suffix}"
        trainer.save_checkpoint(self.folder / state)
        write_json(self.folder / PROGRESS_FILE, {"key": self.key, "state": state, "rows": rows})
        for old in self.folder.glob(f"state-epoch*{self.suffix}"):
            if old.name != state:
                old.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
