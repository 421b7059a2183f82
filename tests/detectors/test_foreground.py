from __future__ import annotations

import numpy as np
import pytest
from _helpers import match_centres
from _helpers import require_shared_data
from _synthetic import compose_real_field
from _synthetic import grid_centres
from _synthetic import synthetic_field

from wsi_screen.config import TilingConfig
from wsi_screen.detectors import create_detector
from wsi_screen.errors import ConfigError
from wsi_screen.errors import UnknownPluginError
from wsi_screen.sources import FieldSource
from wsi_screen.stages import detect_cells


@pytest.mark.parametrize("mpp", [0.0862, 0.2])
def test_every_cell_found_once_across_seams_and_borders(mpp: float) -> None:
    um = 1.0 / mpp
    w, h = round(210 * um), round(176 * um)  # the physical area of a 2452 x 2056 Matek field
    centres = grid_centres(w, h, 24 * um, margin=-8 * um)  # some cells are cut by the border
    centres = [(x, y) for x, y in centres if 0 <= x < w and 0 <= y < h]
    lobed = [i % 3 == 0 for i in range(len(centres))]
    img = synthetic_field(w, h, centres, mpp=mpp, lobed=lobed, seed=1)
    src = FieldSource(img, source_id="f", mpp=mpp)
    tiling = TilingConfig(tile_size_px=round(70 * um), overlap_um=30.0)  # many tiles and seams
    cells = detect_cells(src, create_detector("foreground"), tiling, mpp=mpp)
    hits, multi, extra = match_centres([(c.x, c.y) for c in cells], centres, radius=3 * um)
    assert hits == len(centres)
    assert multi == 0
    assert extra == 0
    assert [c.cell_id for c in cells] == list(range(len(cells)))
    assert len({c.tile_index for c in cells}) > 1  # the seams were really crossed


def test_red_cells_and_background_are_not_cells() -> None:
    img = synthetic_field(1200, 1000, [], n_rbc=80)
    src = FieldSource(img, source_id="rbc")
    assert detect_cells(src, create_detector("foreground"), TilingConfig(), mpp=0.0862) == []


def test_blank_field_gives_no_cells() -> None:
    src = FieldSource(np.full((500, 600, 3), 240, np.uint8), source_id="blank")
    assert detect_cells(src, create_detector("foreground"), TilingConfig(), mpp=0.0862) == []


def test_unknown_option_and_detector_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="known options"):
        create_detector("foreground", min_area=3)
    with pytest.raises(UnknownPluginError, match="did you mean 'foreground'"):
        create_detector("foregrund")


def test_real_matek_patches_found_once(tmp_path: object) -> None:
    """Fields composed from real Matek patches: >= 95 % of the centre cells found, none twice."""
    import cv2

    root = require_shared_data("matek_bm")
    rng = np.random.default_rng(7)
    det = create_detector("foreground")
    hits = multi = total = 0
    for cls in ("BLA", "EOS", "LYT", "MON", "NGS", "PMO"):
        files = sorted((root / cls).glob("*.jpg"))
        pick = [files[i] for i in rng.choice(len(files), 42, replace=False)]
        img, centres = compose_real_field([cv2.imread(str(f))[:, :, ::-1] for f in pick])
        src = FieldSource(img, source_id=cls, mpp=0.0862)
        cells = detect_cells(src, det, TilingConfig(tile_size_px=1024), mpp=0.0862)
        h, m, _ = match_centres([(c.x, c.y) for c in cells], centres, radius=5 / 0.0862)
        hits, multi, total = hits + h, multi + m, total + len(centres)
    assert hits / total >= 0.95
    assert multi / total <= 0.02


def test_work_scale_finds_the_same_cells_as_native_resolution() -> None:
    """Masks computed at work_mpp (shrunk) give the native detector's cells, centres within 1 um."""
    mpp = 0.0862
    um = 1.0 / mpp
    w, h = round(120 * um), round(100 * um)
    centres = grid_centres(w, h, 24 * um, margin=6 * um)
    img = synthetic_field(w, h, centres, mpp=mpp, lobed=[i % 2 == 0 for i in range(len(centres))], seed=3)
    src = FieldSource(img, source_id="f", mpp=mpp)
    native = detect_cells(src, create_detector("foreground", work_mpp=0), TilingConfig(), mpp=mpp)
    coarse = detect_cells(src, create_detector("foreground", work_mpp=0.35), TilingConfig(), mpp=mpp)
    assert len(native) == len(coarse) == len(centres)
    hits, multi, extra = match_centres([(c.x, c.y) for c in coarse], [(c.x, c.y) for c in native], radius=um)
    assert (hits, multi, extra) == (len(native), 0, 0)
    with pytest.raises(ConfigError, match="work_mpp"):
        create_detector("foreground", work_mpp=-1)
