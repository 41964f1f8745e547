"""Stopping a run whose optimisation diverged: a NaN or infinite loss, or weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lenet_compare.core.errors import PipelineError

if TYPE_CHECKING:
    from lenet_compare.train.protocol import Trainer


def non_finite_loss(epoch: int, step: int, steps: int, value: float, at_most: bool = False) -> PipelineError:
    """The error that stops a run whose training loss became NaN or infinite (``step`` is 1-based).

    ``at_most``: the framework only reports the loss every few steps, so ``step`` is the first
    report that showed it, and the loss went bad at that step or up to the previous report.
    """
    where = f"by step {step}" if at_most else f"at step {step}"
    return PipelineError(
        f"the training loss became {value} in epoch {epoch}, {where} of {steps}; training stopped and "
        "no model was written. The optimisation diverged: lower train.lr, check the data (data.normalize, "
        "a damaged cache: rerun prepare) or try another seed"
    )


def check_weights_finite(trainer: Trainer, epoch: int) -> None:
    """Stop a run whose weights hold NaN or inf, even when its loss looks fine.

    The loss check (non_finite_loss) names the step, but it can miss: TensorFlow's
    relu maps NaN to 0, so once conv1's weights are NaN a Keras network outputs constants and
    trains on at chance level with a finite loss.
    """
    bad = [name for name, w in trainer.canonical_weights().items() if not np.isfinite(w).all()]
    if bad:
        raise PipelineError(
            f"the weights {', '.join(bad)} became NaN or infinite in epoch {epoch} (the loss stayed finite, "
            "so the step is unknown); training stopped and no model was written. The optimisation diverged or "
            "the data holds NaN or inf: check the data (rerun prepare), lower train.lr or try another seed"
        )
