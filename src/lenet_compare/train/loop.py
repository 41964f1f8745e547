"""The epoch loop both training steps share (train, ablation_train).

Framework-free: it drives a backend's Trainer one epoch at a time, scores the validation split
after each epoch, stops a diverging run, saves a checkpoint (train/checkpoints.py) that lets an
interrupted run resume, and logs the epoch to the job's live metrics (train/live.py).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from lenet_compare.core import cli
from lenet_compare.train import divergence, scores

if TYPE_CHECKING:
    from lenet_compare.train.checkpoints import Checkpoints
    from lenet_compare.train.live import LiveRun
    from lenet_compare.train.protocol import Trainer


def progress_bar(total: int, epoch: int, epochs: int):
    """A tqdm bar on a terminal; None (no bar) when stderr goes to a file or a pipe."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False)


def run_epochs(
    trainer: Trainer,
    train: dict,
    x_val: np.ndarray,
    y_val: np.ndarray,
    steps: int,
    checkpoints: Checkpoints | None = None,
    label: str = "",
    live: LiveRun | None = None,
) -> list[dict]:
    """Train ``train["epochs"]`` epochs (resuming when a checkpoint matches); one history row each."""
    rows = checkpoints.resume(trainer) if checkpoints else []
    if live is not None:
        # The live files start from the epochs the checkpoint holds: whatever a killed process
        # logged or did not log, each epoch then appears exactly once (train/live.py).
        live.replay(rows)
    epochs = train["epochs"]
    for epoch in range(len(rows) + 1, epochs + 1):
        bar = progress_bar(steps, epoch, epochs)
        try:
            loss, acc, seconds = trainer.train_epoch(epoch, bar)
        finally:
            if bar is not None:
                bar.close()
        divergence.check_weights_finite(trainer, epoch)
        start = time.perf_counter()
        logits = trainer.predict(x_val)
        val_seconds = time.perf_counter() - start
        row = {
            "epoch": epoch,
            "train_loss": loss,
            "train_accuracy": acc,
            "val_loss": scores.cross_entropy(logits, y_val),
            "val_accuracy": scores.accuracy(logits, y_val),
            "epoch_seconds": seconds,
            "val_seconds": val_seconds,
        }
        rows.append(row)
        if checkpoints:
            checkpoints.save(trainer, rows)
        # Logged after the checkpoint, so the live files never show an epoch that a rerun
        # would train again; a kill in between loses only this log line, which replay restores.
        if live is not None:
            live.log_epoch(row)
        cli.log.info(
            "%sepoch %d/%d: loss %.4f, accuracy %.4f, val loss %.4f, val accuracy %.4f, %.2f s (+ %.2f s val)",
            label,
            epoch,
            epochs,
            loss,
            acc,
            row["val_loss"],
            row["val_accuracy"],
            seconds,
            val_seconds,
        )
    return rows
