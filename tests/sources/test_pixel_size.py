"""The pixel size comes from every place a file records it; the one used is named, contradictions warned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from wsi_screen.sources import open_source
from wsi_screen.sources import resolve_mpp
from wsi_screen.sources.mpp import PixelSize
from wsi_screen.sources.mpp import pick

IMG = np.full((600, 800, 3), 230, np.uint8)


def _resolved(path: Path) -> tuple[float, str | None, str]:
    with open_source(path) as src:
        r = resolve_mpp(src, user_mpp=None, model_mpp=0.0862)
    return r.mpp, r.origin, r.warning or ""


def test_ome_physical_size_with_its_unit(tmp_path: Path) -> None:
    path = tmp_path / "a.ome.tiff"
    meta = {"PhysicalSizeX": 250, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 250, "PhysicalSizeYUnit": "nm"}
    tifffile.imwrite(path, IMG, photometric="rgb", ome=True, metadata=meta)
    mpp, origin, warning = _resolved(path)
    assert mpp == pytest.approx(0.25) and origin == "OME PhysicalSizeX/Y" and warning == ""


def test_aperio_mpp_is_used_and_disagreeing_resolution_tags_are_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "a.svs"
    desc = "Aperio Image Library v12.0.0\r\n800x600 (256x256) JPEG/RGB Q=70|AppMag = 20|MPP = 0.5"
    tifffile.imwrite(path, IMG, photometric="rgb", tile=(256, 256), description=desc,
                     resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")  # fmt: skip
    mpp, origin, warning = _resolved(path)
    assert mpp == pytest.approx(0.5) and origin == "Aperio MPP (ImageDescription)"
    assert (
        "0.5 um/px in Aperio MPP (ImageDescription) but 0.25 in TIFF resolution tags (centimeter)" in warning
    )


def test_a_resolution_with_the_unit_none_is_a_warning_not_a_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "n.tif"
    tifffile.imwrite(path, IMG, photometric="rgb", resolution=(4000, 4000), resolutionunit="NONE")
    mpp, origin, warning = _resolved(path)
    assert origin is None and mpp == pytest.approx(0.0862)
    assert "the unit 'none': not a pixel size, ignored" in warning
    plain = tmp_path / "plain.tif"  # tifffile's placeholder (1/1, no unit): nothing recorded, no warning
    tifffile.imwrite(plain, IMG, photometric="rgb")
    assert "'none'" not in _resolved(plain)[2]


@pytest.mark.parametrize(("y", "warned"), [(0.26, False), (0.27, True)])
def test_x_and_y_differing_by_more_than_5_percent_is_a_warning(
    tmp_path: Path, y: float, warned: bool
) -> None:
    path = tmp_path / "xy.tiff"
    tifffile.imwrite(path, IMG, photometric="rgb", tile=(256, 256),
                     resolution=(1e4 / 0.25, 1e4 / y), resolutionunit="CENTIMETER")  # fmt: skip
    mpp, origin, warning = _resolved(path)
    assert mpp == pytest.approx(0.25) and origin == "TIFF resolution tags (centimeter)"
    assert ("not square" in warning) is warned


def test_implausible_values_are_passed_over_for_the_next_place() -> None:
    dpi = PixelSize(352.8, 352.8, "TIFF resolution tags (inch)")  # 72 dpi: print size, not the specimen's
    picked = pick([dpi, PixelSize(0.25, 0.25, "OME PhysicalSizeX/Y")], Path("s.tif"))
    assert (picked.x, picked.origin, picked.warnings) == (0.25, "OME PhysicalSizeX/Y", ())
    assert pick([dpi], Path("s.tif")).x is None
