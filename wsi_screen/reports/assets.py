"""Images embedded in report.html: the overview thumbnail and small cell crops as data: URIs.

They are also kept beside the report in ``report_assets.json`` so ``wsi-screen review apply`` can
re-render report.html without reopening the (possibly moved) input image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from wsi_screen.errors import WsiScreenError
from wsi_screen.io import atomic_write_text
from wsi_screen.jpeg import jpeg_data_uri
from wsi_screen.patches import crop_patch
from wsi_screen.report_config import ReportConfig
from wsi_screen.sources.base import ImageSource
from wsi_screen.textfiles import read_json_object
from wsi_screen.types import Cell

log = logging.getLogger(__name__)

ASSETS_JSON = "report_assets.json"
MAX_ASSETS_BYTES = 256 << 20
"""Largest report_assets.json read back (base64 crops of every gallery and queue cell at their caps)."""


ReportOptions = ReportConfig  # the [report] section of the run configuration


@dataclass
class ReportAssets:
    """Embedded images: overview (data URI, its size and scale to level 0) and crops by cell id."""

    overview_uri: str | None = None
    overview_size: tuple[int, int] = (0, 0)
    overview_scale: float = 1.0
    crops: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for ``report_assets.json``."""
        return {
            "overview_uri": self.overview_uri,
            "overview_size": list(self.overview_size),
            "overview_scale": self.overview_scale,
            "crops": {str(k): v for k, v in self.crops.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportAssets:
        """Inverse of :meth:`to_dict`."""
        w, h = data.get("overview_size") or (0, 0)
        return cls(
            overview_uri=data.get("overview_uri"),
            overview_size=(int(w), int(h)),
            overview_scale=float(data.get("overview_scale", 1.0)),
            crops={int(k): str(v) for k, v in (data.get("crops") or {}).items()},
        )


def build_assets(
    source: ImageSource,
    cells: Iterable[Cell],
    *,
    source_mpp: float,
    model_mpp: float,
    patch_size_px: int,
    options: ReportOptions,
) -> ReportAssets:
    """Render the overview thumbnail and one crop per given cell.

    Each crop covers the same physical area as the classifier's patch (``patch_size_px`` at
    ``model_mpp``), resampled to ``options.crop_px``, so the reviewer sees what the model saw.
    """
    w, h = source.dimensions
    thumb = source.thumbnail(options.overview_max_side)
    th, tw = thumb.shape[:2]
    assets = ReportAssets(
        overview_uri=jpeg_data_uri(thumb, options.jpeg_quality),
        overview_size=(tw, th),
        overview_scale=tw / w if w else 1.0,
    )
    crop_mpp = model_mpp * patch_size_px / options.crop_px
    for cell in cells:
        img = crop_patch(
            source, cell, patch_size_px=options.crop_px, source_mpp=source_mpp, model_mpp=crop_mpp
        )
        assets.crops[cell.cell_id] = jpeg_data_uri(img, options.jpeg_quality)
    log.debug("report assets: overview %dx%d, %d crops (image %dx%d)", tw, th, len(assets.crops), w, h)
    return assets


def write_assets(assets: ReportAssets, path: Path) -> None:
    """Write ``report_assets.json`` atomically."""
    atomic_write_text(path, json.dumps(assets.to_dict(), separators=(",", ":")))


def read_assets(path: Path) -> ReportAssets:
    """Read ``report_assets.json``; a missing file gives empty assets (report without images)."""
    if not path.exists():
        log.warning("%s not found: the report is rendered without crops or overview", path)
        return ReportAssets()
    try:  # read bounded: size and nesting capped, a one-line error
        return ReportAssets.from_dict(
            read_json_object(path, error=WsiScreenError, max_bytes=MAX_ASSETS_BYTES)
        )
    except (ValueError, TypeError, AttributeError, WsiScreenError) as e:
        msg = f"{path}: not a valid report assets file: {str(e).removeprefix(f'{path}: ')}"
        raise WsiScreenError(msg) from e
