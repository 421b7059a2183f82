"""Stop counting when every cut-off is decided, with an error rate that holds over repeated looks.

Counting cells region by region and stopping as soon as a 95 % interval excludes each cut-off
looks at the data many times; with a fixed-sample interval at every look, a blast share on a
cut-off is called wrongly about four times as often as the nominal 2.5 % per side
(``benchmarks/stopping_rule.py``). Two sequential rules keep the nominal level:

- ``alpha_spending`` (default): looks at fixed cell counts (``min_cells``, then every
  ``look_every`` cells); look ``j`` spends ``alpha * 6 / (pi^2 j^2)`` of the error (the sum over
  all looks, however many, is ``alpha``), with an exact Clopper-Pearson interval at that level.
  By the union bound the chance that any look's interval misses the true share is at most
  ``alpha``, whatever the number of looks and whenever counting stops; early looks get the
  largest share, so a clear case stops at ``min_cells``.
- ``confidence_sequence``: the beta-binomial mixture confidence sequence (Robbins 1970; Howard
  et al. 2021): ``{p : M_n(p) < 1 / alpha}`` with ``M_n(p)`` the Beta(a, b)-mixture likelihood
  ratio, a nonnegative martingale under ``p``. Ville's inequality makes it valid at every cell,
  not only at planned looks; it is wider than the spending rule at the usual counts.

Both assume the counted cells are exchangeable (sampled alike); cells from the same region are
correlated in practice, so looks come at counts, and regions are counted best first.
All functions are pure; :class:`SequentialRule` holds the settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from scipy.optimize import brentq
from scipy.special import betaincinv
from scipy.special import betaln

from wsi_screen.aggregate import INDETERMINATE
from wsi_screen.aggregate import decide
from wsi_screen.config import STOPPING_METHODS
from wsi_screen.errors import ConfigError

METHODS = STOPPING_METHODS
PRIOR = (0.5, 4.5)
"""Beta prior of the mixture (mean 10 %): tightest for shares near the usual blast cut-offs."""


def look_alpha(look: int, alpha: float) -> float:
    """Error spent at look ``look`` (1-based): ``alpha * 6 / (pi^2 look^2)``; the series sums to ``alpha``.

    Example:
        >>> round(look_alpha(1, 0.05), 5), round(sum(look_alpha(j, 0.05) for j in range(1, 10**5)), 4)
        (0.0304, 0.05)
    """
    if look < 1:
        msg = f"look numbers start at 1, got {look}"
        raise ValueError(msg)
    return alpha * 6.0 / (math.pi**2 * look**2)


def spending_interval(k: int, n: int, look: int, alpha: float = 0.05) -> list[float]:
    """Clopper-Pearson interval (percent) of k/n at the confidence ``1 - look_alpha(look, alpha)``."""
    a = look_alpha(look, alpha)
    lo = 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, a / 2))
    hi = 1.0 if k >= n else float(betaincinv(k + 1, n - k, 1 - a / 2))
    return [100.0 * lo, 100.0 * hi]


def mixture_interval(k: int, n: int, alpha: float = 0.05, prior: tuple[float, float] = PRIOR) -> list[float]:
    """Beta-binomial mixture confidence sequence at ``n`` cells (percent): valid at every n at once."""
    a, b = prior
    log_bound = math.log(1.0 / alpha)
    mix = betaln(a + k, b + n - k) - betaln(a, b)

    def excess(p: float) -> float:  # log M_n(p) - log(1 / alpha); the set where it is < 0 is an interval
        return float(mix - k * math.log(p) - (n - k) * math.log1p(-p) - log_bound)

    eps = 1e-12
    centre = min(max(k / n, eps), 1 - eps)
    lo = 0.0 if k == 0 or excess(eps) <= 0 else brentq(excess, eps, centre)
    hi = 1.0 if k == n or excess(1 - eps) <= 0 else brentq(excess, centre, 1 - eps)
    return [100.0 * float(lo), 100.0 * float(hi)]


@dataclass(frozen=True)
class SequentialRule:
    """When to look and how wide the interval is at each look.

    Attributes:
        method: one of :data:`METHODS`.
        alpha: total error over all looks (two-sided; 0.05 as the reports' 95 % intervals).
        min_cells: the first look (no decision before an adequate count).
        look_every: counted cells between looks.
    """

    method: str = "alpha_spending"
    alpha: float = 0.05
    min_cells: int = 500
    look_every: int = 100

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            msg = f"stopping.method must be one of {', '.join(METHODS)}, got {self.method!r}"
            raise ConfigError(msg)
        if not 0.0 < self.alpha < 1.0:
            msg = f"stopping.alpha must be in (0, 1), got {self.alpha}"
            raise ConfigError(msg)
        if self.min_cells < 1 or self.look_every < 1:
            msg = (
                f"stopping: min_cells and look_every must be >= 1, got {self.min_cells} and {self.look_every}"
            )
            raise ConfigError(msg)

    def look_number(self, n: int) -> int | None:
        """1-based look at ``n`` counted cells, or None when ``n`` is not a look."""
        if n < self.min_cells or (n - self.min_cells) % self.look_every:
            return None
        return (n - self.min_cells) // self.look_every + 1

    def next_look(self, n: int) -> int:
        """The smallest look count above ``n``."""
        if n < self.min_cells:
            return self.min_cells
        return self.min_cells + ((n - self.min_cells) // self.look_every + 1) * self.look_every

    def interval(self, k: int, n: int) -> list[float]:
        """The rule's interval (percent, rounded to 3 decimals as reports are) at ``n`` counted cells.

        Between looks (the last regions ran out, say) the interval is that of the next look,
        which is never taken: the error bound still holds.
        """
        look = self.look_number(self.next_look(n - 1)) or 1
        if self.method == "alpha_spending":
            ci = spending_interval(k, n, look, self.alpha)
        else:
            ci = mixture_interval(k, n, self.alpha)
        return [round(ci[0], 3), round(ci[1], 3)]

    def decisions(self, k: int, n: int, cutoffs: Iterable[float]) -> dict[float, str]:
        """Each cut-off's status at a look: raised / not_raised / indeterminate on the rule's interval."""
        ci = self.interval(k, n)
        return {c: decide(ci, c) for c in cutoffs}

    def decided(self, counts: Iterable[tuple[int, float]], n: int) -> bool:
        """Whether every (count, cut-off) pair is decided at look count ``n`` (False between looks)."""
        if self.look_number(n) is None:
            return False
        return all(self.decisions(k, n, [c])[c] != INDETERMINATE for k, c in counts)

    def thresholds(self, n: int, cut: float) -> tuple[int, int]:
        """At look count ``n``: (smallest count raised, largest count not raised) for ``cut``.

        Counts between the two (exclusive) are indeterminate; both are found by bisection, as
        the interval moves up with the count. The largest count not raised is -1 when none is.
        """
        return _thresholds(self, n, cut)


@lru_cache(maxsize=4096)
def _thresholds(rule: SequentialRule, n: int, cut: float) -> tuple[int, int]:
    def first(pred: Callable[[int], bool]) -> int:  # smallest k in [0, n + 1] with pred(k), pred monotone
        lo, hi = 0, n + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if pred(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    raise_at = first(lambda k: rule.interval(k, n)[0] >= cut)
    not_raised_upto = first(lambda k: rule.interval(k, n)[1] >= cut) - 1
    return raise_at, not_raised_upto
