"""How often the screening pipeline calls a counted cell a blast: the model's measured blast confusion.

A count of cells called blast is not a count of blasts: the model misses some blasts (its blast
sensitivity) and calls some other cells blast (its false-blast rate). :class:`BlastRates` holds
both, measured on validation cells screened as the pipeline screens them (detected, cut, classified;
:mod:`wsi_screen.training.blast_rates_fit`), as counts, so their uncertainty travels with them.
It is stored in ``model.json`` (``blast_rates``) and echoed in every report's ``model`` block;
:mod:`wsi_screen.blast` uses it to adjust the blast share and widen its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wsi_screen.errors import ModelBundleError

__all__ = ["BlastRates", "rates_of"]


def _count(data: dict[str, Any], key: str, where: str) -> int:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        msg = f"{where}: blast_rates.{key} must be a non-negative integer, got {v!r}"
        raise ModelBundleError(msg)
    return v


def _codes(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = data.get(key)
    if not isinstance(v, list) or not all(isinstance(c, str) and 0 < len(c) <= 16 for c in v):
        msg = f"{where}: blast_rates.{key} must be a list of class codes, got {v!r}"
        raise ModelBundleError(msg)
    return tuple(v)


@dataclass(frozen=True)
class BlastRates:
    """The pipeline's blast confusion on counted validation cells.

    Attributes:
        blast_classes: the classes counted as blast when the rates were measured.
        excluded_classes: the classes outside the count when the rates were measured.
        blasts: true blasts whose call was a counted class.
        blasts_called_blast: of them, called one of ``blast_classes``.
        others: true counted non-blast cells whose call was a counted class.
        others_called_blast: of them, called one of ``blast_classes``.
        fitted_on: what the cells were (data, split, how they were composed and screened).
    """

    blast_classes: tuple[str, ...]
    excluded_classes: tuple[str, ...]
    blasts: int
    blasts_called_blast: int
    others: int
    others_called_blast: int
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if self.blasts_called_blast > self.blasts or self.others_called_blast > self.others:
            msg = "blast_rates: a 'called blast' count exceeds its total"
            raise ModelBundleError(msg)

    @property
    def sensitivity(self) -> float:
        """Share of true blasts called blast (nan without blasts)."""
        return self.blasts_called_blast / self.blasts if self.blasts else math.nan

    @property
    def false_blast_rate(self) -> float:
        """Share of other counted cells called blast (nan without them)."""
        return self.others_called_blast / self.others if self.others else math.nan

    def to_json(self) -> dict[str, Any]:
        """The model.json ``blast_rates`` block (counts, plus the two rates for readers)."""
        return {
            "blast_classes": list(self.blast_classes),
            "excluded_classes": list(self.excluded_classes),
            "blasts": self.blasts,
            "blasts_called_blast": self.blasts_called_blast,
            "others": self.others,
            "others_called_blast": self.others_called_blast,
            "sensitivity": None if not self.blasts else round(self.sensitivity, 4),
            "false_blast_rate": None if not self.others else round(self.false_blast_rate, 4),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> BlastRates:
        """Read and check a ``blast_rates`` block (the rates are recomputed from the counts).

        Raises:
            ModelBundleError: naming ``where`` and the bad key.
        """
        if not isinstance(data, dict):
            msg = f"{where}: blast_rates must be an object, got {type(data).__name__}"
            raise ModelBundleError(msg)
        fitted = data.get("fitted_on", "")
        if not isinstance(fitted, str):
            msg = f"{where}: blast_rates.fitted_on must be a string"
            raise ModelBundleError(msg)
        b, bb, o, ob = (
            _count(data, k, where) for k in ("blasts", "blasts_called_blast", "others", "others_called_blast")
        )
        if bb > b or ob > o:
            msg = f"{where}: blast_rates: a 'called blast' count exceeds its total"
            raise ModelBundleError(msg)
        return cls(
            _codes(data, "blast_classes", where),
            _codes(data, "excluded_classes", where),
            b,
            bb,
            o,
            ob,
            fitted[:2000],
        )


def rates_of(model_info: dict[str, Any]) -> BlastRates | None:
    """The blast rates a report's ``model`` block carries (None when the model has none)."""
    block = model_info.get("blast_rates")
    return None if block is None else BlastRates.from_json(block, "model.blast_rates")
