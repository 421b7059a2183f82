"""Pixel size from the red cells in view: their median diameter against a known size in microns.

Red cells are the commonest objects of a smear and vary little in size: their median diameter in
pixels checks the file's or the user's um/px, and stands in when neither is known.

Method (:data:`METHOD`): the whole, isolated red cells of :mod:`wsi_screen.red_cells`; their
diameters in a window around the size mode (dirt and stray white cells fall outside it); the
median of those, if enough cells qualify and their sizes cluster, against the reference diameter.
Several images of one scale (small crops, the fields of one slide) can be pooled.

:data:`RBC_DIAMETER_UM` = 7.5 um is the textbook mean diameter of a normal red cell; dried,
stained films measure about 7.2-7.5 um (Price-Jones's diameter curves, range about 6.2-8.2 um).
Calibrate it per lab on slides of known pixel size. An estimate's interval covers the sampling
of the median only: micro- or macrocytes, or a lab's spreading, move the diameter itself more.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wsi_screen.red_cells import DEFAULT_LIMITS
from wsi_screen.red_cells import Floats
from wsi_screen.red_cells import RedCellLimits
from wsi_screen.red_cells import red_cell_diameters
from wsi_screen.red_cells import size_mode

log = logging.getLogger(__name__)

RBC_DIAMETER_UM = 7.5
"""Mean diameter (um) of a normal red cell (see the module docstring)."""
METHOD = "rbc-median-diameter/v1"
__all__ = [
    "DEFAULT_LIMITS",
    "METHOD",
    "RBC_DIAMETER_UM",
    "RedCellLimits",
    "ScaleEstimate",
    "estimate_mpp",
    "estimate_mpp_pooled",
    "explain",
    "red_cell_diameters",
    "summarise",
]


@dataclass(frozen=True)
class ScaleEstimate:
    """A pixel size measured from red cells.

    Attributes:
        mpp: Microns per pixel of the input image.
        diameter_px: Median equivalent diameter of the red cells (input pixels).
        n_cells: Red cells the median rests on.
        mpp_low: Low end of the 95 % interval of ``mpp`` (order statistics of the median).
        mpp_high: High end of that interval.
        iqr_px: Quartiles of the diameters (input pixels).
        rbc_diameter_um: The reference diameter used.
        method: How it was measured (:data:`METHOD`).
    """

    mpp: float
    diameter_px: float
    n_cells: int
    mpp_low: float
    mpp_high: float
    iqr_px: tuple[float, float]
    rbc_diameter_um: float
    method: str = METHOD


def estimate_mpp(
    rgb: NDArray[np.uint8],
    *,
    rbc_diameter_um: float = RBC_DIAMETER_UM,
    limits: RedCellLimits = DEFAULT_LIMITS,
) -> ScaleEstimate | None:
    """The pixel size of one field (``uint8`` H x W x 3 RGB) from its red cells.

    Returns:
        The estimate, or None (the reason logged at debug level; :func:`explain` gives it) when
        too few red cells qualify or their sizes have no clear mode.
    """
    return estimate_mpp_pooled([rgb], rbc_diameter_um=rbc_diameter_um, limits=limits)


def estimate_mpp_pooled(
    images: Iterable[NDArray[np.uint8]],
    *,
    rbc_diameter_um: float = RBC_DIAMETER_UM,
    limits: RedCellLimits = DEFAULT_LIMITS,
) -> ScaleEstimate | None:
    """The common pixel size of images at one scale (small crops, a slide's fields): cells pooled."""
    pooled = [np.zeros(0), *(red_cell_diameters(im, limits) for im in images)]
    return summarise(np.concatenate(pooled), rbc_diameter_um=rbc_diameter_um, limits=limits)


def summarise(
    diameters_px: Floats, *, rbc_diameter_um: float = RBC_DIAMETER_UM, limits: RedCellLimits = DEFAULT_LIMITS
) -> ScaleEstimate | None:
    """The estimate from candidate diameters (input pixels), or None with the reason logged."""
    if not (math.isfinite(rbc_diameter_um) and rbc_diameter_um > 0):
        msg = f"red-cell diameter must be a positive number of microns, not {rbc_diameter_um}"
        raise ValueError(msg)
    why = explain(diameters_px, limits)
    if why is not None:
        log.debug("no pixel size from red cells: %s", why)
        return None
    d = size_mode(np.asarray(diameters_px, dtype=np.float64), limits)
    n = d.size
    q1, med, q3 = (float(x) for x in np.percentile(d, [25, 50, 75]))
    half = 1.96 * math.sqrt(n) / 2  # 1-based ranks of the median's 95 % interval (binomial, normal approx.)
    lo = float(d[max(0, math.floor(n / 2 - half) - 1)])
    hi = float(d[min(n - 1, math.ceil(1 + n / 2 + half) - 1)])
    return ScaleEstimate(
        mpp=rbc_diameter_um / med,
        diameter_px=med,
        n_cells=n,
        mpp_low=rbc_diameter_um / hi,
        mpp_high=rbc_diameter_um / lo,
        iqr_px=(q1, q3),
        rbc_diameter_um=rbc_diameter_um,
    )


def explain(diameters_px: Floats, limits: RedCellLimits = DEFAULT_LIMITS) -> str | None:
    """Why these candidate diameters give no estimate, or None when they give one."""
    n_all = int(np.size(diameters_px))
    d = size_mode(np.asarray(diameters_px, dtype=np.float64), limits)
    if d.size < limits.min_cells:
        return f"{d.size} red cells qualify, fewer than {limits.min_cells}"
    if d.size < limits.min_mode_share * n_all:
        return f"no dominant cell size: {d.size} of {n_all} round objects near the mode"
    q1, med, q3 = np.percentile(d, [25, 50, 75])
    if q3 - q1 > limits.max_spread * med:
        return f"red-cell sizes too spread (IQR {q3 - q1:.1f} px on a median of {med:.1f} px)"
    return None
