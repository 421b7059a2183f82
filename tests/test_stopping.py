"""The sequential stopping rule: looks, intervals, decisions, and its error under repeated looks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from wsi_screen.aggregate import proportion_ci
from wsi_screen.errors import ConfigError
from wsi_screen.stopping import SequentialRule
from wsi_screen.stopping import look_alpha
from wsi_screen.stopping import mixture_interval
from wsi_screen.stopping import spending_interval

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_spent_error_sums_to_alpha() -> None:
    assert sum(look_alpha(j, 0.05) for j in range(1, 20_000)) == pytest.approx(0.05, abs=1e-5)
    assert look_alpha(1, 0.05) > look_alpha(2, 0.05) > look_alpha(10, 0.05)
    with pytest.raises(ValueError, match="start at 1"):
        look_alpha(0, 0.05)


@pytest.mark.parametrize("k", [0, 1, 25, 100, 500])
def test_sequential_intervals_hold_the_estimate_and_are_wider_than_one_look(k: int) -> None:
    n = 500
    fixed = proportion_ci(k, n, "exact")
    assert fixed is not None
    for ci in (spending_interval(k, n, 1), mixture_interval(k, n)):
        assert ci[0] <= 100 * k / n <= ci[1]
        assert ci[0] <= fixed[0] + 1e-9 and ci[1] >= fixed[1] - 1e-9
    assert spending_interval(25, 500, 1) == pytest.approx(
        [100 * b for b in _cp(25, 500, look_alpha(1, 0.05))], abs=1e-9
    )


def _cp(k: int, n: int, a: float) -> tuple[float, float]:
    from scipy.stats import beta

    return float(beta.ppf(a / 2, k, n - k + 1)), float(beta.ppf(1 - a / 2, k + 1, n - k))


def test_mixture_interval_narrows_with_more_cells() -> None:
    widths = [np.diff(mixture_interval(round(0.1 * n), n))[0] for n in (200, 800, 3200)]
    assert widths[0] > widths[1] > widths[2]


def test_looks_and_decisions() -> None:
    rule = SequentialRule(min_cells=500, look_every=100)
    assert [rule.look_number(n) for n in (400, 500, 550, 600, 1400)] == [None, 1, None, 2, 10]
    assert (rule.next_look(10), rule.next_look(500), rule.next_look(550)) == (500, 600, 600)
    assert rule.interval(30, 550) == rule.interval(30, 550)  # between looks: the next look's level
    d = rule.decisions(150, 500, (5.0, 10.0, 20.0, 30.0))  # 30 %: raised at 5, 10, 20; 30 undecided
    assert d == {5.0: "raised", 10.0: "raised", 20.0: "raised", 30.0: "indeterminate"}
    assert rule.decided([(150, 20.0)], 500) and not rule.decided([(150, 30.0)], 500)
    assert not rule.decided([(150, 20.0)], 550)  # no look at 550 cells
    raise_at, not_upto = rule.thresholds(500, 10.0)
    assert rule.interval(raise_at, 500)[0] >= 10.0 > rule.interval(raise_at - 1, 500)[0]
    assert rule.interval(not_upto, 500)[1] < 10.0 <= rule.interval(not_upto + 1, 500)[1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "bonferroni"}, r"stopping\.method must be one of"),
        ({"alpha": 0.0}, r"stopping\.alpha must be in \(0, 1\)"),
        ({"look_every": 0}, "look_every must be >= 1"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SequentialRule(**kwargs)


def test_error_holds_under_repeated_looks_where_a_fixed_interval_does_not() -> None:
    """A blast share on the cut-off: the sequential rules stay under the nominal 2.5 % per side."""
    from stopping_rule import Naive
    from stopping_rule import simulate

    def wrong(rule: SequentialRule) -> float:
        return simulate(rule, 10.0, reps=600, max_cells=3000, rng=np.random.default_rng(3))["wrong_any"]

    naive = wrong(Naive("alpha_spending"))
    assert naive > 0.05  # peeking with a fixed 95 % interval: about 4x the nominal rate
    for method in ("alpha_spending", "confidence_sequence"):
        assert wrong(SequentialRule(method)) <= 0.025
    far = simulate(SequentialRule(), 30.0, reps=200, max_cells=3000, rng=np.random.default_rng(4))
    assert far["median_cells"] == 500 and far["all_decided"] == 1.0 and far["wrong_any"] == 0.0
