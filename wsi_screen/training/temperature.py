"""Fit the temperature of temperature scaling on validation logits (Guo et al. 2017).

One scalar T > 0 minimises the mean negative log-likelihood of ``softmax(logits / T)`` on the
validation split. The search runs over log T with SciPy's bounded scalar minimiser (T between
0.05 and 20), so T stays positive without constraints; the NLL is smooth and unimodal in log T.
ECE before and after is the package's one implementation,
:func:`wsi_screen.training.metrics.expected_calibration_error`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.classifiers.calibration import Calibration
from wsi_screen.classifiers.calibration import softmax
from wsi_screen.errors import ConfigError
from wsi_screen.training.metrics import expected_calibration_error

__all__ = ["T_BOUNDS", "calibrate_logits", "fit_temperature", "nll"]

T_BOUNDS = (0.05, 20.0)
"""Range searched for the temperature; a fit at either end is reported as such."""


def _check(logits: NDArray[np.floating[Any]], labels: NDArray[np.integer[Any]]) -> None:
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        msg = (
            f"temperature fit: need N x C logits and N labels (N > 0), got {logits.shape} and {labels.shape}"
        )
        raise ConfigError(msg)
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        msg = f"temperature fit: labels must lie in 0..{logits.shape[1] - 1}"
        raise ConfigError(msg)
    if not np.isfinite(logits).all():
        msg = "temperature fit: logits contain NaN or infinity"
        raise ConfigError(msg)


def nll(logits: NDArray[np.floating[Any]], labels: NDArray[np.integer[Any]], temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``.

    Example:
        >>> round(nll(np.array([[0.0, 0.0]]), np.array([0]), 1.0), 4)
        0.6931
    """
    from scipy.special import logsumexp

    z = np.asarray(logits, dtype=np.float64) / temperature
    lse = logsumexp(z, axis=1)
    return float(np.mean(lse - z[np.arange(len(labels)), labels]))


def fit_temperature(logits: NDArray[np.floating[Any]], labels: NDArray[np.integer[Any]]) -> float:
    """Return the T in :data:`T_BOUNDS` minimising :func:`nll` on (``logits``, ``labels``).

    Raises:
        ConfigError: shapes disagree, labels out of range, or non-finite logits.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 3, 2000)
        >>> z = rng.normal(size=(2000, 3)) + 3 * np.eye(3)[y]
        >>> round(fit_temperature(z * 2.0, y) / fit_temperature(z, y), 2)
        2.0
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    _check(logits, labels)
    lo, hi = (math.log(b) for b in T_BOUNDS)
    res = minimize_scalar(
        lambda log_t: nll(logits, labels, math.exp(log_t)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(float(res.x)))


def calibrate_logits(
    logits: NDArray[np.floating[Any]],
    labels: NDArray[np.integer[Any]],
    *,
    fitted_on: str = "validation",
    bins: int = 15,
) -> Calibration:
    """Fit the temperature on (``logits``, ``labels``) and report ECE and NLL before and after.

    Returns:
        The :class:`~wsi_screen.classifiers.calibration.Calibration` block for model.json.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    t = fit_temperature(logits, labels)
    return Calibration(
        temperature=t,
        fitted_on=fitted_on,
        n=len(labels),
        ece_before=expected_calibration_error(softmax(logits), labels, bins=bins),
        ece_after=expected_calibration_error(softmax(logits, t), labels, bins=bins),
        nll_before=nll(logits, labels, 1.0),
        nll_after=nll(logits, labels, t),
        bins=bins,
    )
