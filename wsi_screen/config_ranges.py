"""The range of every numeric configuration key: one table, checked however a configuration is made.

Each section's own checks say what a value means (a percentage, a positive size, one value
against another); this table gives every number a lower and an upper bound, so no value from a
configuration file or the command line can make a run allocate without limit or overflow
(``tiling.tile_size_px = 30000`` held gigabytes for a small field; ``tiling.overlap_um = 1e308``
overflowed to a traceback). A value outside its range is a one-line :class:`ConfigError` naming the
key. Every numeric key of :class:`~wsi_screen.config.ScreenConfig` has an entry (tested): a new key
needs one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from wsi_screen.errors import ConfigError

DAY_S = 86_400.0

RANGES: dict[str, tuple[float, float]] = {
    "tiling.tile_size_px": (64, 8192),
    "scale.rbc_diameter_um": (4.0, 12.0),
    "scale.min_cells": (3, 100_000),
    "scale.warn_difference": (0.01, 0.99),
    "scale.slide_window_px": (256, 8192),
    "tiling.overlap_um": (0.0, 500.0),
    "classify.batch_size": (0, 65536),
    "classify.threads": (0, 1024),
    "aggregate.blast_cutoffs_percent": (0.0, 100.0),
    "aggregate.min_cells": (1, 1_000_000),
    "aggregate.low_confidence": (0.0, 1.0),
    "aggregate.max_artefact_percent": (0.0, 100.0),
    "aggregate.hairy_cell.min_count": (0, 1_000_000),
    "aggregate.hairy_cell.min_percent": (0.0, 100.0),
    "aggregate.hairy_cell.min_confidence": (0.0, 1.0),
    "aggregate.domain_margin": (0.0, 1.0),
    "report.crop_px": (16, 512),
    "report.jpeg_quality": (1, 100),
    "report.gallery_max_per_class": (0, 500),
    "report.review_queue_max": (0, 5000),
    "report.overview_max_side": (64, 8192),
    "report.viewer_max_side": (256, 65536),
    "regions.region_um": (0.0, 10_000.0),
    "regions.view_mpp": (0.0, 100.0),
    "regions.background_od": (0.0, 10.0),
    "regions.min_foreground_fraction": (0.0, 1.0),
    "regions.dense_od": (0.0, 10.0),
    "regions.max_dense_fraction": (0.0, 1.0),
    "regions.nucleus_blue_excess": (0.0, 255.0),
    "regions.clump_area_um2": (0.0, 1e6),
    "regions.clump_join_um": (0.0, 1000.0),
    "regions.max_clump_fraction": (0.0, 1.0),
    "regions.black_level": (0, 255),
    "regions.max_black_fraction": (0.0, 1.0),
    "regions.focus_mpp": (0.0, 10.0),
    "regions.focus_sample_um": (0.0, 10_000.0),
    "regions.min_focus": (0.0, 10.0),
    "regions.min_focus_relative": (0.0, 1.0),
    "regions.min_field_counted_fraction": (0.0, 1.0),
    # the limits, as LimitsConfig checks them itself (wsi_screen.limits)
    "limits.max_slide_pixels": (1e6, 1e12),
    "limits.min_tile_px": (1, 4096),
    "limits.max_tiles": (1, 1_000_000_000),
    "limits.max_decode_samples": (4096, 2**31),
    "limits.max_field_pixels": (1e4, 1e9),
    "limits.max_unreadable_tile_fraction": (0.0, 1.0),
    "limits.input_timeout_s": (0.0, 7 * DAY_S),
    "stopping.alpha": (0.0, 1.0),
    "stopping.min_cells": (1, 1_000_000),
    "stopping.look_every": (1, 1_000_000),
    "pipeline.workers": (-1, 64),
    "pipeline.read_ahead": (0, 64),
    "pipeline.write_behind": (0, 64),
    "pipeline.worker_nice": (0, 19),
}
"""Dotted key -> (lowest, highest) value accepted, both included (a list's items each)."""
MAX_LIST_ITEMS = 256
"""Most items of a list-valued key (class lists, cut-offs)."""


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_range(key: str, value: float) -> None:
    """Refuse ``value`` outside the range of ``key`` in :data:`RANGES` (a key without one: no check).

    Raises:
        ConfigError: out of range, or not finite; names the key.
    """
    bounds = RANGES.get(key)
    if bounds is None:
        return
    lo, hi = bounds
    finite = isinstance(value, int) or math.isfinite(value)  # an int may be too large for a float
    if not (finite and lo <= value <= hi):
        msg = f"{key} must be {_text(lo)}-{_text(hi)}, got {_text(value)}"
        raise ConfigError(msg)


def _text(value: float) -> str:
    """A bound or value as a message shows it: ints whole (a huge one by its size), floats in ``%g``."""
    if not isinstance(value, int):
        return f"{value:g}"
    return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"


def check_ranges(section: str, config: Any) -> None:
    """Check every numeric field of the dataclass ``config`` (the section ``section``), nested ones too.

    Raises:
        ConfigError: a value outside its range, or a list longer than :data:`MAX_LIST_ITEMS`.
    """
    for f in dataclasses.fields(config):
        key, value = f"{section}.{f.name}", getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_ranges(key, value)
        elif isinstance(value, tuple):
            if len(value) > MAX_LIST_ITEMS:
                msg = f"{key} has {len(value):,} items; at most {MAX_LIST_ITEMS}"
                raise ConfigError(msg)
            for item in value:
                if is_number(item):
                    check_range(key, item)
        elif is_number(value):
            check_range(key, value)
