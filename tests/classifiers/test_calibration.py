"""Temperature scaling at inference: probabilities from logits, and model.json's calibration block."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_screen.classifiers.calibration import Calibration
from wsi_screen.classifiers.calibration import apply_temperature
from wsi_screen.classifiers.calibration import softmax
from wsi_screen.errors import ModelBundleError


def test_temperature_softens_without_changing_the_call() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 8)) * 4
    p1, p2 = softmax(z), softmax(z, 2.0)
    np.testing.assert_allclose(p1.sum(1), 1.0)
    np.testing.assert_allclose(p2.sum(1), 1.0)
    assert (p1.argmax(1) == p2.argmax(1)).all()
    assert (p2.max(1) < p1.max(1)).all()  # T > 1 lowers every top probability
    np.testing.assert_allclose(softmax(z, 0.5), softmax(z * 2.0))


def test_softmax_is_stable_for_large_logits() -> None:
    p = softmax(np.array([[1000.0, 0.0], [-1000.0, -1001.0]]))
    assert np.isfinite(p).all()
    assert p[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_is_refused(t: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.zeros((1, 2)), t)
    with pytest.raises(ModelBundleError, match="temperature"):
        Calibration(temperature=t)


def test_calibration_block_roundtrip() -> None:
    cal = Calibration(temperature=1.7, fitted_on="validation", n=389, ece_before=0.07, ece_after=0.03)
    block = {**cal.to_json(), "weights_sha256": "ab" * 32}
    back = Calibration.from_json(block)
    assert back.temperature == 1.7 and back.n == 389 and back.ece_after == 0.03
    assert back.extra == {"weights_sha256": "ab" * 32}
    assert back.to_json() == block
    np.testing.assert_allclose(back.probabilities(np.array([[3.4, 0.0]])), softmax(np.array([[2.0, 0.0]])))


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ([1.5], "must be an object"),
        ({"fitted_on": "validation"}, "no temperature"),
        ({"temperature": "warm"}, "invalid value"),
        ({"temperature": -2}, "must be > 0"),
        ({"temperature": 1.0, "method": "isotonic"}, "unknown"),
    ],
)
def test_bad_calibration_block_names_the_file(block: object, match: str) -> None:
    with pytest.raises(ModelBundleError, match=match) as e:
        Calibration.from_json(block, where="bundle/model.json")
    assert "bundle/model.json" in str(e.value)
