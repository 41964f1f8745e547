"""The one check that a recorded run was trained with the params a report expects.

A run's record (run.json, an ablation run's JSON) stores the params it was trained with. A
report that reads it compares them with what params.yaml asks for now; any difference means the
run is stale and must be retrained, and the error names every differing dotted key.
"""

from __future__ import annotations

import json
from pathlib import Path

from lenet_compare.core.errors import PipelineError


def as_recorded(value):
    """``value`` as a JSON record holds it: tuples become lists, keys strings."""
    return json.loads(json.dumps(value))


def differing_keys(recorded, expected, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (a key missing on one side differs too)."""
    if isinstance(recorded, dict) and isinstance(expected, dict):
        keys = list(dict.fromkeys([*expected, *recorded]))
        return [k for key in keys for k in differing_keys(recorded.get(key), expected.get(key), f"{prefix}{key}.")]
    return [] if recorded == expected else [prefix.rstrip(".") or "params"]


def check_trained_with(recorded, expected: dict, where: Path | str, rerun: str) -> None:
    """Stop unless ``recorded`` (from a run's record) equals ``expected`` (from params.yaml).

    ``where`` names the record, ``rerun`` says what makes it anew.
    """
    stale = f"the run is stale: {rerun}"
    if not isinstance(recorded, dict):
        raise PipelineError(f"{where} does not record the params it was trained with; {stale}")
    differing = differing_keys(recorded, as_recorded(expected))
    if differing:
        raise PipelineError(
            f"{where} was trained with params that differ from params.yaml in {', '.join(differing)}; {stale}"
        )
