"""Countable-region selection settings (``[regions]``), read by :mod:`wsi_screen.regions`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wsi_screen.config_ranges import check_ranges
from wsi_screen.errors import ConfigError


def check_unit(key: str, value: float) -> None:
    """Refuse a value outside [0, 1] (and NaN), naming its key."""
    if not 0.0 <= value <= 1.0:  # also false for NaN
        msg = f"{key} must be in [0, 1], got {value}"
        raise ConfigError(msg)


@dataclass(frozen=True)
class RegionsConfig:
    """Countable-region selection: which parts of a scan feed the differential (wsi_screen.regions).

    A grid of square regions is scored on a low-resolution view (background, density, clumps,
    artefacts), then on a level-0 sample for focus. Each region is ``counted`` or ``excluded``
    with its reasons; only counted regions feed the differential and empty ones are never read
    at full resolution.

    Attributes:
        enabled: score regions on slides (off: every tile counts, as for fields).
        fields: also score the regions of field images (a field whose counted share is below
            ``min_field_counted_fraction`` is excluded from its case).
        region_um: side of a region in microns.
        view_mpp: pixel size (um/px) of the low-resolution view the regions are scored on.
        background_od: optical density (summed over R, G, B) above the glass at which a pixel is
            foreground; the glass is the brightest part of the view.
        min_foreground_fraction: a region with less foreground is ``empty``.
        dense_od: optical density (summed, above the glass) of a dense pixel: overlapping cells
            (one red cell is about 0.3-0.5).
        max_dense_fraction: a region with more dense non-nuclear pixels is ``thick``.
        nucleus_blue_excess: ``B - G`` (0-255) of a nuclear-stain pixel in the view.
        clump_area_um2: a connected area of nuclear stain and dense pixels larger than this is a
            clump (one nucleus is about 50 um2, a large cell with its cytoplasm up to ~300 um2).
        clump_join_um: stain closer than this is one connected area (touching cells' nuclei).
        max_clump_fraction: a region with a larger share of its stain in clumps is ``clumped``.
        black_level: pixels with every channel below this (0-255) are debris, pen or dust.
        max_black_fraction: a region with more such pixels holds an ``artefact``.
        focus_mpp: pixel size (um/px) at which focus is measured (coarser only if the scan is).
        focus_sample_um: side of the full-resolution sample each region's focus is measured on.
        min_focus: a region with a lower focus score (fine-to-coarse band energy) is ``blurred``.
        min_focus_relative: ... or with a focus below this share of the source's 75th percentile
            (0 turns the relative test off).
        min_field_counted_fraction: a field with a smaller counted share of its non-empty area is
            excluded from a case.
    """

    enabled: bool = True
    fields: bool = True
    region_um: float = 100.0
    view_mpp: float = 2.0
    background_od: float = 0.15
    min_foreground_fraction: float = 0.05
    dense_od: float = 0.8
    max_dense_fraction: float = 0.3
    nucleus_blue_excess: float = 50.0
    clump_area_um2: float = 600.0
    clump_join_um: float = 0.0
    max_clump_fraction: float = 0.5
    black_level: int = 30
    max_black_fraction: float = 0.02
    focus_mpp: float = 0.25
    focus_sample_um: float = 50.0
    min_focus: float = 0.07
    min_focus_relative: float = 0.5
    min_field_counted_fraction: float = 0.5

    def __post_init__(self) -> None:
        for key in ("region_um", "view_mpp", "background_od", "dense_od", "clump_area_um2", "focus_mpp",
                    "focus_sample_um"):  # fmt: skip
            value = getattr(self, key)
            if not value > 0 or not math.isfinite(value):
                msg = f"regions.{key} must be a positive number, got {value}"
                raise ConfigError(msg)
        for key in ("min_foreground_fraction", "max_dense_fraction", "max_clump_fraction",
                    "max_black_fraction", "min_focus_relative", "min_field_counted_fraction"):  # fmt: skip
            check_unit(f"regions.{key}", getattr(self, key))
        if not 0.0 <= self.nucleus_blue_excess <= 255.0:
            msg = f"regions.nucleus_blue_excess must be in [0, 255], got {self.nucleus_blue_excess}"
            raise ConfigError(msg)
        if not 0 <= self.black_level <= 255:
            msg = f"regions.black_level must be in [0, 255], got {self.black_level}"
            raise ConfigError(msg)
        for key in ("min_focus", "clump_join_um"):
            value = getattr(self, key)
            if not value >= 0:
                msg = f"regions.{key} must be >= 0, got {value}"
                raise ConfigError(msg)
        check_ranges("regions", self)  # before the checks that compare values with each other
        if self.view_mpp * 4 > self.region_um:
            msg = f"regions.view_mpp ({self.view_mpp}) must be at most a quarter of regions.region_um ({self.region_um})"
            raise ConfigError(msg)
        if not self.focus_mpp * 32 <= self.focus_sample_um <= self.region_um:
            msg = (
                f"regions.focus_sample_um ({self.focus_sample_um}) must be between 32 focus pixels "
                f"({self.focus_mpp * 32:g} um) and regions.region_um ({self.region_um})"
            )
            raise ConfigError(msg)
