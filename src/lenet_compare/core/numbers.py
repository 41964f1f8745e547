"""Small number helpers the reports share, each with its unit in its name.

Accuracies are fractions (0..1) in the records and in the analyses; the reports show them in
percent, and differences of accuracies in percentage points (``points``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# Accuracies are correct / total; their differences carry floating-point noise around 1e-17.
# Rounding to 12 decimals makes equal differences tie (Wilcoxon ranks), makes a constant set of
# differences have exactly zero variance and a change of exactly zero print as "+0.00", never
# "-0.00", without touching anything a test set can resolve (1 / 10,000 = 1e-4).
DECIMALS = 12


def number_or_none(value) -> float | None:
    """A JSON number as a float, or None for anything else (null, a string, a boolean)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def numbers(values: Iterable) -> list[float]:
    """The values that are numbers, as floats (a record may hold null or nothing)."""
    return [x for x in map(number_or_none, values) if x is not None]


def finite_or_none(x) -> float | None:
    """A finite float, or None (JSON null) for None, nan and inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def denoised(values: Iterable[float]) -> list[float]:
    """Floats rounded to ``DECIMALS`` decimals, with no negative zero."""
    return [round(float(v), DECIMALS) + 0.0 for v in values]


def percent_from_fraction(fraction: float | None) -> float | None:
    """A fraction, or a difference of fractions, in percent (points); None stays None (JSON null)."""
    return None if fraction is None else 100.0 * fraction


def one_or_all(values: Iterable):
    """The one value all share (as it is), else the list of distinct values in order; None for none."""
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    if not distinct:
        return None
    return distinct[0] if len(distinct) == 1 else distinct


def signed_points(points: float | None, digits: int = 2) -> str:
    """Percentage points with their sign, as the reports write them: +0.40, -1.30; n/a for None."""
    return "n/a" if points is None else f"{points:+.{digits}f}"
