"""Fitting the temperature on validation logits recovers a known temperature and lowers the ECE."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_screen.classifiers.calibration import softmax
from wsi_screen.errors import ConfigError
from wsi_screen.training.metrics import expected_calibration_error
from wsi_screen.training.temperature import T_BOUNDS
from wsi_screen.training.temperature import calibrate_logits
from wsi_screen.training.temperature import fit_temperature
from wsi_screen.training.temperature import nll


def calibrated_logits(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is calibrated by construction: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 2.0
    p = softmax(z)
    y = np.array([rng.choice(c, p=row) for row in p])
    return z, y


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_recovers_a_known_temperature(true_t: float) -> None:
    z, y = calibrated_logits(20_000, 5)
    # logits of a model that is over- (T > 1) or under-confident (T < 1) by exactly true_t
    t = fit_temperature(z * true_t, y)
    assert t == pytest.approx(true_t, rel=0.05)
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.05)


def test_calibration_lowers_ece_and_nll() -> None:
    z, y = calibrated_logits(5000, 8, seed=1)
    cal = calibrate_logits(z * 3.0, y)
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    assert cal.ece_before is not None and cal.ece_after is not None
    assert cal.ece_before > 0.1  # an overconfident model is visibly miscalibrated
    assert cal.ece_after < cal.ece_before / 3
    assert cal.nll_after is not None and cal.nll_before is not None and cal.nll_after < cal.nll_before
    assert cal.n == 5000 and cal.fitted_on == "validation"
    assert expected_calibration_error(softmax(z * 3.0, cal.temperature), y) == pytest.approx(cal.ece_after)


def test_nll_of_uniform_logits_is_log_c() -> None:
    assert nll(np.zeros((4, 8)), np.array([0, 1, 2, 3]), 1.0) == pytest.approx(np.log(8))


def test_perfectly_separable_logits_go_to_the_low_end() -> None:
    y = np.arange(100) % 4
    z = np.eye(4)[y] * 5.0  # always right: the NLL keeps falling as T shrinks, until it is ~0
    t = fit_temperature(z, y)
    assert T_BOUNDS[0] <= t < 0.2
    assert nll(z, y, t) < 1e-6


@pytest.mark.parametrize(
    ("z", "y", "match"),
    [
        (np.zeros((3, 2)), np.array([0, 1]), "need N x C"),
        (np.zeros((2, 2)), np.array([0, 2]), "labels must lie"),
        (np.array([[np.nan, 0.0]]), np.array([0]), "NaN"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), "N > 0"),
    ],
)
def test_bad_inputs_are_refused(z: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        fit_temperature(z, y)
