"""Intervals of proportions and the three-state decision of a cut-off.

:func:`decide` is the three-state rule of a cut-off on its interval (``raised`` when the lower bound
reaches the cut-off, ``not_raised`` when the upper bound is below it, ``indeterminate`` when the
interval spans it) and :func:`cells_to_decide` how many more counted cells would decide it if the
proportion stayed where it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv
from scipy.special import ndtri
from scipy.stats import binomtest

RAISED, NOT_RAISED, INDETERMINATE, NOT_ASSESSABLE = "raised", "not_raised", "indeterminate", "not_assessable"
MAX_CELLS_TO_DECIDE = 10_000_000
"""Beyond this many counted cells a decision is reported as out of reach."""


def proportion_ci(k: int, n: int, method: str = "wilson", confidence: float = 0.95) -> list[float] | None:
    """Interval of k/n in percent (Wilson score or Clopper-Pearson exact, 95 % by default); None if n == 0."""
    if n <= 0:
        return None
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method=method)
    return [round(100.0 * float(ci.low), 3), round(100.0 * float(ci.high), 3)]


@dataclass(frozen=True)
class Flag:
    """A screening flag with its evidence."""

    name: str
    status: str
    value: float | None
    threshold: float | None
    message: str
    ci95: list[float] | None = None
    more_cells_to_decide: int | None = None
    """For an ``indeterminate`` flag: counted cells to add before the interval, at the same
    proportion, would exclude the cut-off (None: decided, or not decidable by counting more)."""


def decide(ci: list[float] | None, cut: float) -> str:
    """Three-state decision of a cut-off from a 95 % interval in percent.

    Example:
        >>> decide([1.7, 20.1], 5.0), decide([5.0, 9.1], 5.0), decide([0.2, 4.99], 5.0)
        ('indeterminate', 'raised', 'not_raised')
    """
    if ci is None:
        return NOT_ASSESSABLE
    if ci[0] >= cut:
        return RAISED
    return NOT_RAISED if ci[1] < cut else INDETERMINATE


def bounds(k: float, n: int, method: str, confidence: float = 0.95) -> tuple[float, float]:
    """Interval (fractions) of a proportion k/n for a real-valued k (the formulas of :func:`proportion_ci`)."""
    tail = (1.0 - confidence) / 2
    if method == "exact":
        lo = 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, tail))
        hi = 1.0 if k >= n else float(betaincinv(k + 1, n - k, 1.0 - tail))
        return lo, hi
    z, p = float(ndtri(1.0 - tail)), k / n
    centre = (2 * n * p + z * z) / (2 * (n + z * z))
    half = z / (2 * (n + z * z)) * float(np.sqrt(4 * n * p * (1 - p) + z * z))
    return (0.0 if k <= 0 else centre - half), (1.0 if k >= n else centre + half)


def cells_to_decide(
    k: int,
    n: int,
    cut_percent: float,
    method: str = "wilson",
    interval: Callable[[float, int], tuple[float, float]] | None = None,
) -> int | None:
    """Counted cells to add to ``n`` before the interval at the proportion ``k / n`` excludes the cut-off.

    ``interval(k, n)`` gives the interval (fractions) the decision rests on; by default the 95 %
    interval of the proportion itself (:func:`bounds`). Returns 0 when it already does, None when the
    proportion equals the cut-off (no count decides it) or more than :data:`MAX_CELLS_TO_DECIDE`
    cells would be needed (an interval that never narrows enough, too).

    Example:
        >>> cells_to_decide(2, 32, 5.0)  # 6.25 % of 32 cells: 95 % CI 1.7-20.1 %
        1136
    """
    if n <= 0:
        return None
    p, c = k / n, cut_percent / 100.0
    if p == c and interval is None:
        return None

    def decided(total: int) -> bool:
        lo, hi = interval(p * total, total) if interval else bounds(p * total, total, method)
        return lo >= c or hi < c

    if decided(n):
        return 0
    top = 2 * n
    while not decided(top):
        if top > MAX_CELLS_TO_DECIDE:
            return None
        top *= 2
    low = top // 2  # not decided at low, decided at top
    while top - low > 1:
        mid = (low + top) // 2
        low, top = (low, mid) if decided(mid) else (mid, top)
    return top - n


def pct(k: float, n: float) -> float | None:
    """k/n in percent, rounded to 3 decimals as reports are; None when n is 0."""
    return None if n <= 0 else round(100.0 * k / n, 3)
