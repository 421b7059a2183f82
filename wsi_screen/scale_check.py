"""The red cells in view against the pixel size an input is screened at (stage ``read``).

The file's pixel size wins, then ``--mpp``; the red cells are a check on either (a warning when
they differ by more than ``scale.warn_difference``) and, when neither is given, the pixel size
used (saying so) instead of silently assuming the model's training scale. The measurement is
recorded in report.json as ``input.mpp_estimate`` whatever is used.
"""

from __future__ import annotations

import logging
from typing import Any

from wsi_screen.scale_config import ScaleConfig
from wsi_screen.sources import ResolvedMpp
from wsi_screen.sources.base import ImageSource

log = logging.getLogger(__name__)


def _pixels(source: ImageSource, cfg: ScaleConfig) -> Any:  # noqa: ANN401 - uint8 HxWx3
    """A field whole; a slide's level-0 window of ``cfg.slide_window_px`` at its centre."""
    w, h = source.dimensions
    if len(source.level_downsamples) <= 1 and max(w, h) <= 4 * cfg.slide_window_px:
        return source.read_region(0, 0, w, h)
    side = min(cfg.slide_window_px, w, h)
    return source.read_region((w - side) // 2, (h - side) // 2, side, side)


def check_scale(
    source: ImageSource, resolved: ResolvedMpp, cfg: ScaleConfig
) -> tuple[ResolvedMpp, dict[str, Any] | None]:
    """Measure the red cells; return the pixel size to screen at and the record for the report.

    Returns:
        ``resolved`` unchanged, or the red cells' estimate when the input had no pixel size of
        its own (``use_when_missing``); and ``None`` when the check is off, else a dict with the
        estimate (``mpp``, ``interval``, ``n_cells``, ``diameter_px``, ``rbc_diameter_um``,
        ``method``), whether it was ``used``, its ``difference`` from the pixel size given, or
        the ``reason`` there is none.
    """
    if not cfg.red_cells:
        return resolved, None
    from dataclasses import replace

    from wsi_screen.red_cells import RedCellLimits
    from wsi_screen.scale_estimate import explain
    from wsi_screen.scale_estimate import red_cell_diameters
    from wsi_screen.scale_estimate import summarise

    limits = RedCellLimits(min_cells=cfg.min_cells)
    try:
        diameters = red_cell_diameters(_pixels(source, cfg), limits)  # measured once
        est = summarise(diameters, rbc_diameter_um=cfg.rbc_diameter_um, limits=limits)
        reason = None if est is not None else explain(diameters, limits)
    except Exception as e:  # noqa: BLE001 - a check that cannot be made never fails the input
        log.debug("red-cell scale check failed: %s", e)
        est, reason = None, f"not measured ({type(e).__name__}: {str(e)[:200]})"
    if est is None:
        reason = reason or "too few whole, isolated red cells"
        return resolved, {"mpp": None, "reason": reason, "rbc_diameter_um": cfg.rbc_diameter_um}
    record: dict[str, Any] = {
        "mpp": round(est.mpp, 5),
        "interval": [round(est.mpp_low, 5), round(est.mpp_high, 5)],
        "n_cells": est.n_cells,
        "diameter_px": round(est.diameter_px, 2),
        "rbc_diameter_um": cfg.rbc_diameter_um,
        "method": est.method,
        "used": False,
    }
    if resolved.source == "model_default":
        if not cfg.use_when_missing:
            return resolved, record
        record["used"] = True
        warn = (
            f"no pixel size in the file and no --mpp given: screened at {est.mpp:.4g} um/px measured "
            f"from {est.n_cells} red cells (median {est.diameter_px:.1f} px taken as "
            f"{cfg.rbc_diameter_um:g} um); give --mpp if the scan's pixel size is known"
        )
        return ResolvedMpp(est.mpp, "red_cells", warn), record
    diff = (est.mpp - resolved.mpp) / resolved.mpp
    record["difference"] = round(diff, 4)
    if abs(diff) > cfg.warn_difference:
        given = "the file's" if resolved.source == "file" else "the --mpp"
        warn = (
            f"{est.n_cells} red cells measure {est.mpp:.4g} um/px, {abs(diff):.0%} "
            f"{'above' if diff > 0 else 'below'} {given} {resolved.mpp:.4g}: check the pixel size "
            f"(red cells taken as {cfg.rbc_diameter_um:g} um)"
        )
        joined = "; ".join(w for w in (resolved.warning, warn) if w)
        return replace(resolved, warning=joined), record
    return resolved, record
