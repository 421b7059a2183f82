"""Temperature scaling of a classifier's logits (Guo et al. 2017), as stored in ``model.json``.

A bundle may carry ``"calibration": {"temperature": T, ...}``; inference then reports
``softmax(logits / T)`` instead of ``softmax(logits)``. Dividing by one positive number never
changes the arg-max, so calls stay the same and only the probabilities (review queue,
low-confidence QC, blast % by probability) become honest. The temperature is fitted on the
validation split by :mod:`wsi_screen.training.temperature`; the expected calibration error
reported with it is :func:`wsi_screen.training.metrics.expected_calibration_error` (15 equal-width
bins), which lives on the training side because a screening run never measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wsi_screen.errors import ModelBundleError

__all__ = ["Calibration", "apply_temperature", "softmax"]


def apply_temperature(logits: NDArray[np.floating[Any]], temperature: float) -> NDArray[np.float64]:
    """Return ``logits / temperature`` (float64).

    Raises:
        ValueError: ``temperature`` is not a finite number > 0.

    Example:
        >>> apply_temperature(np.array([[2.0, 0.0]]), 2.0)
        array([[1., 0.]])
    """
    if not (math.isfinite(temperature) and temperature > 0):
        msg = f"temperature must be a finite number > 0, got {temperature}"
        raise ValueError(msg)
    return np.asarray(logits, dtype=np.float64) / float(temperature)


def softmax(logits: NDArray[np.floating[Any]], temperature: float = 1.0) -> NDArray[np.float64]:
    """Row-wise softmax of ``logits / temperature``, computed stably (max subtracted).

    Example:
        >>> softmax(np.array([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
    """
    z = apply_temperature(logits, temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and how it was obtained (the ``calibration`` block of model.json).

    Attributes:
        temperature: T > 0; probabilities are ``softmax(logits / T)``. 1 leaves them unchanged.
        fitted_on: which data the temperature was fitted on (``validation``).
        n: number of images it was fitted on.
        ece_before: expected calibration error on those images at T = 1.
        ece_after: the same at the fitted T.
        nll_before: mean negative log-likelihood at T = 1.
        nll_after: the same at the fitted T.
        bins: equal-width confidence bins of the ECE.
        extra: further JSON-able figures (e.g. ECE on a held-out share), kept as given.
    """

    temperature: float = 1.0
    fitted_on: str = ""
    n: int = 0
    ece_before: float | None = None
    ece_after: float | None = None
    nll_before: float | None = None
    nll_after: float | None = None
    bins: int = 15
    extra: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """Refuse a temperature that would not give probabilities."""
        if not (isinstance(self.temperature, int | float) and math.isfinite(self.temperature)):
            msg = f"calibration.temperature must be a finite number, got {self.temperature!r}"
            raise ModelBundleError(msg)
        if self.temperature <= 0:
            msg = f"calibration.temperature must be > 0, got {self.temperature}"
            raise ModelBundleError(msg)

    def probabilities(self, logits: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """Calibrated probabilities of ``logits`` (N x C)."""
        return softmax(logits, self.temperature)

    def to_json(self) -> dict[str, Any]:
        """Return the model.json ``calibration`` block."""
        out: dict[str, Any] = {
            "method": "temperature",
            "temperature": float(self.temperature),
            "fitted_on": self.fitted_on,
            "n": int(self.n),
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
            "ece_bins": int(self.bins),
        }
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: object, where: str = "model.json") -> Calibration:
        """Validate a model.json ``calibration`` block.

        Raises:
            ModelBundleError: not a mapping, an unknown method, or a bad temperature (names ``where``).
        """
        if not isinstance(data, dict):
            msg = f"{where}: calibration must be an object, got {type(data).__name__}"
            raise ModelBundleError(msg)
        if data.get("method", "temperature") != "temperature":
            msg = f"{where}: calibration.method {data.get('method')!r} unknown (only 'temperature')"
            raise ModelBundleError(msg)
        known = {"method", "temperature", "fitted_on", "n", "ece_before", "ece_after"}
        known |= {"nll_before", "nll_after", "ece_bins"}
        try:
            temperature = float(data["temperature"])
            return cls(
                temperature=temperature,
                fitted_on=str(data.get("fitted_on", "")),
                n=int(data.get("n", 0)),
                ece_before=_opt_float(data.get("ece_before")),
                ece_after=_opt_float(data.get("ece_after")),
                nll_before=_opt_float(data.get("nll_before")),
                nll_after=_opt_float(data.get("nll_after")),
                bins=int(data.get("ece_bins", 15)),
                extra={k: v for k, v in data.items() if k not in known} or None,
            )
        except KeyError as e:
            msg = f"{where}: calibration has no temperature"
            raise ModelBundleError(msg) from e
        except (TypeError, ValueError) as e:
            msg = f"{where}: calibration: invalid value ({e})"
            raise ModelBundleError(msg) from e
        except ModelBundleError as e:
            msg = f"{where}: {e}"
            raise ModelBundleError(msg) from e


def _opt_float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]
