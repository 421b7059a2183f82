"""The three-state rule of a cut-off on its 95 % interval, and the cells that would decide it."""

from __future__ import annotations

import pytest

from wsi_screen.aggregate import INDETERMINATE
from wsi_screen.aggregate import NOT_ASSESSABLE
from wsi_screen.aggregate import NOT_RAISED
from wsi_screen.aggregate import RAISED
from wsi_screen.aggregate import cells_to_decide
from wsi_screen.aggregate import decide
from wsi_screen.aggregate import proportion_ci


@pytest.mark.parametrize(
    ("ci", "cut", "status"),
    [
        ([5.0, 9.0], 5.0, RAISED),  # lower bound on the cut-off: raised
        ([4.999, 9.0], 5.0, INDETERMINATE),
        ([1.0, 4.999], 5.0, NOT_RAISED),
        ([1.0, 5.0], 5.0, INDETERMINATE),  # upper bound on the cut-off: not below it
        ([0.0, 100.0], 5.0, INDETERMINATE),
        (None, 5.0, NOT_ASSESSABLE),
    ],
)
def test_decide_at_the_boundaries(ci: list[float] | None, cut: float, status: str) -> None:
    assert decide(ci, cut) == status


def test_the_issue_example_is_indeterminate() -> None:
    ci = proportion_ci(2, 32)  # 6.2 %, 95 % CI 1.7-20.1
    assert ci is not None and decide(ci, 5.0) == INDETERMINATE and decide(ci, 10.0) == INDETERMINATE
    assert decide(ci, 25.0) == NOT_RAISED


def _interval(k: float, n: int, method: str) -> list[float]:
    """95 % interval in percent at a real-valued count (independent restatement: scipy.stats.beta, Wilson's formula)."""
    from scipy.stats import beta

    if method == "exact":
        lo = 0.0 if k <= 0 else beta.ppf(0.025, k, n - k + 1)
        hi = 1.0 if k >= n else beta.ppf(0.975, k + 1, n - k)
    else:
        z, p = 1.959963984540054, k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
        lo, hi = (0.0 if k <= 0 else centre - half), (1.0 if k >= n else centre + half)
    return [100 * lo, 100 * hi]


@pytest.mark.parametrize("method", ["wilson", "exact"])
@pytest.mark.parametrize(
    ("k", "n", "cut"), [(2, 32, 5.0), (3, 40, 10.0), (16, 100, 20.0), (0, 30, 5.0), (9, 30, 20.0)]
)
def test_cells_to_decide_is_the_smallest_count_that_decides(k: int, n: int, cut: float, method: str) -> None:
    more = cells_to_decide(k, n, cut, method)
    assert more is not None and more > 0
    total, p = n + more, k / n
    assert decide(_interval(p * n, n, method), cut) == INDETERMINATE
    assert decide(_interval(p * total, total, method), cut) != INDETERMINATE
    assert decide(_interval(p * (total - 1), total - 1, method), cut) == INDETERMINATE


def test_cells_to_decide_closed_form_for_wilson() -> None:
    # Wilson excludes c once (p - c)^2 > z^2 c (1 - c) / N: for 2 of 32 against 5 %, N > 1167.8
    assert cells_to_decide(2, 32, 5.0) == 1168 - 32


def test_cells_to_decide_edge_cases() -> None:
    assert cells_to_decide(10, 100, 5.0) == 0  # 10 % of 100: lower bound 5.5 % already decides it
    assert cells_to_decide(5, 100, 5.0) is None  # at the cut-off: no count decides it
    assert cells_to_decide(0, 0, 5.0) is None
    assert cells_to_decide(50_001, 1_000_000, 5.0) is None  # out of reach (> 10 million cells)
