"""history.csv: one row per epoch, written by the train step and read by the report."""

from __future__ import annotations

import csv
import io

# history.csv, one row per epoch (docs/design.md, "Files"): six columns, then the validation pass's time.
HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_seconds",  # the training pass alone
    "val_seconds",  # predicting the validation split, timed separately
)


def history_csv(rows: list[dict]) -> str:
    """The rows as CSV text, in HISTORY_COLUMNS order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    # repr: the shortest text that reads back as the same float, so reruns compare exactly
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    return out.getvalue()
