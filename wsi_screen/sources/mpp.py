"""The pixel size a file records, from every place a reader offers, and which one is used.

A slide may record its pixel size in several places: the Aperio description's ``MPP``, OME
``PhysicalSizeX/Y`` with their units, a vendor's metadata (Philips, Leica), OpenSlide's
``openslide.mpp-x/y``, DICOM's Pixel Measures, and the TIFF resolution tags with their unit.
:func:`pick` takes them in that order of authority and uses the first plausible one; the report
names it (``input.mpp_from``). What would otherwise be a silent choice is a warning: x and y
differing by more than 5 %, two places disagreeing by more than 5 %, or a resolution recorded
with the unit "none".
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MPP_RANGE = (0.01, 5.0)
"""Plausible microscope pixel sizes (um/px); others are DPI artefacts, not the specimen's scale."""
TOLERANCE = 0.05
"""x against y, or one place against another: a larger relative difference is a warning."""
_UM_PER_UNIT = {2: 25_400.0, 3: 10_000.0, 4: 1_000.0, 5: 1.0}  # TIFF ResolutionUnit: inch, cm, mm, um
_UNIT_NAMES = {1: "none", 2: "inch", 3: "centimeter", 4: "millimeter", 5: "micrometer"}
_OME_UNITS = {
    "µm": 1.0,
    "um": 1.0,
    "μm": 1.0,
    "nm": 1e-3,
    "pm": 1e-6,
    "Å": 1e-4,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}
_OME_PIXELS = re.compile(r"<(?:\w+:)?Pixels\b([^>]*)>")
_OME_ATTR = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


@dataclass(frozen=True)
class PixelSize:
    """One recorded pixel size (um/px) and where it was found."""

    x: float
    y: float
    origin: str


@dataclass(frozen=True)
class Picked:
    """The pixel size used (None: the file records no plausible one), where from, and warnings."""

    x: float | None
    y: float | None
    origin: str | None
    warnings: tuple[str, ...]


def _differ(a: float, b: float) -> bool:
    return abs(a - b) / max(min(a, b), 1e-12) > TOLERANCE


def pick(candidates: list[PixelSize], path: Path) -> Picked:
    """The first plausible candidate, with warnings for what contradicts it.

    Example:
        >>> pick([PixelSize(0.25, 0.25, "A"), PixelSize(0.5, 0.5, "B")], Path("s.tif")).warnings[0][:36]
        's.tif: the pixel size is 0.25 um/px '
    """
    plausible = []
    for c in candidates:
        if all(MPP_RANGE[0] <= v <= MPP_RANGE[1] for v in (c.x, c.y)):
            plausible.append(c)
        else:
            log.warning("%s: ignoring implausible pixel size %.4g um/px in %s", path, c.x, c.origin)
    if not plausible:
        return Picked(None, None, None, ())
    used, warnings = plausible[0], []
    if _differ(used.x, used.y):
        warnings.append(
            f"pixels are not square ({used.x:.4g} x {used.y:.4g} um/px in {used.origin}): the x size "
            "is used and cells look stretched; review the calls"
        )
    for other in plausible[1:]:
        if _differ(other.x, used.x):
            warnings.append(
                f"{path}: the pixel size is {used.x:.4g} um/px in {used.origin} but {other.x:.4g} in "
                f"{other.origin}; {used.origin} is used"
            )
    return Picked(used.x, used.y, used.origin, tuple(warnings))


def resolution_tags(
    x_res: Any, y_res: Any, unit: int | None, path: Path
) -> tuple[list[PixelSize], list[str]]:
    """The pixel size the TIFF resolution tags give (and a warning for the unit "none").

    ``x_res``/``y_res`` are rationals (numerator, denominator) or numbers, in pixels per unit.
    """

    def per_unit(v: Any) -> Fraction | None:
        try:
            f = Fraction(*v) if isinstance(v, tuple | list) else Fraction(v)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return f if f > 0 else None

    xr, yr = per_unit(x_res), per_unit(y_res or x_res)
    if xr is None or yr is None:
        return [], []
    unit = 2 if unit is None else int(unit)  # the TIFF default unit is the inch
    if unit == 1:
        if xr == 1 and yr == 1:
            return [], []  # the writer's placeholder: no resolution recorded
        return [], [
            f"{path}: the TIFF resolution ({float(xr):.4g} x {float(yr):.4g} per unit) has the unit "
            "'none': not a pixel size, ignored"
        ]
    if unit not in _UM_PER_UNIT:
        return [], []
    scale = _UM_PER_UNIT[unit]
    return [
        PixelSize(float(scale / xr), float(scale / yr), f"TIFF resolution tags ({_UNIT_NAMES[unit]})")
    ], []


def ome_physical_size(ome_xml: str | None) -> list[PixelSize]:
    """OME ``PhysicalSizeX/Y`` of the first ``Pixels`` element, in um (units converted)."""
    if not ome_xml:
        return []
    m = _OME_PIXELS.search(ome_xml[:1_000_000])
    if m is None:
        return []
    attrs: dict[str, str] = dict(_OME_ATTR.findall(m.group(1)))
    try:
        x = float(attrs["PhysicalSizeX"]) * _OME_UNITS[attrs.get("PhysicalSizeXUnit", "µm")]
        y = (
            float(attrs.get("PhysicalSizeY", attrs["PhysicalSizeX"]))
            * _OME_UNITS[attrs.get("PhysicalSizeYUnit", "µm")]
        )
    except (KeyError, ValueError):
        return []
    return [PixelSize(x, y, "OME PhysicalSizeX/Y")] if x > 0 and y > 0 else []


def tiff_candidates(tif: Any, props: Any, path: Path, page: Any = None) -> tuple[list[PixelSize], list[str]]:
    """Every pixel size a TIFF records: Aperio MPP, OME, vendor metadata (tiffslide), resolution tags.

    Args:
        tif: the ``tifffile.TiffFile``.
        props: tiffslide's properties (``{}`` for a file tiffslide did not open).
        path: the file (named in warnings).
        page: the page whose resolution tags count (default: the first page).
    """
    out: list[PixelSize] = []
    aperio = props.get("aperio.MPP")
    if aperio:
        with contextlib.suppress(ValueError):
            out.append(PixelSize(float(aperio), float(aperio), "Aperio MPP (ImageDescription)"))
    try:
        out += ome_physical_size(tif.ome_metadata)
    except Exception:  # noqa: BLE001 - a damaged OME block: no OME pixel size
        log.debug("%s: OME metadata not readable", path)
    vendor = str(props.get("tiffslide.vendor") or "")
    mx, my = props.get("tiffslide.mpp-x"), props.get("tiffslide.mpp-y")
    if vendor in ("philips", "leica") and mx:
        with contextlib.suppress(TypeError, ValueError):
            out.append(PixelSize(float(mx), float(my or mx), f"{vendor} metadata"))
    tags = (page if page is not None else tif.pages.first).tags
    unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else None
    x_res = tags["XResolution"].value if "XResolution" in tags else None
    y_res = tags["YResolution"].value if "YResolution" in tags else None
    found, warnings = resolution_tags(x_res, y_res, unit, path)
    return out + found, warnings


def openslide_candidates(props: Any, path: Path) -> tuple[list[PixelSize], list[str]]:
    """OpenSlide's ``openslide.mpp-x/y``, and the TIFF resolution tags it reports for a cross-check."""
    out: list[PixelSize] = []
    mx, my = props.get("openslide.mpp-x"), props.get("openslide.mpp-y")
    try:
        if mx:
            vendor = props.get("openslide.vendor") or "OpenSlide"
            out.append(PixelSize(float(mx), float(my or mx), f"openslide.mpp-x/y ({vendor})"))
    except ValueError:
        pass
    units = {v: k for k, v in _UNIT_NAMES.items()}
    unit = units.get(str(props.get("tiff.ResolutionUnit", "")).lower())
    if unit is None:
        return out, []
    found, warnings = resolution_tags(
        props.get("tiff.XResolution"), props.get("tiff.YResolution"), unit, path
    )
    return out + found, warnings
