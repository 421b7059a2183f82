"""Property-based tests (hypothesis): tiling ownership, patch geometry, aggregation, intervals.

Each property is one the pipeline's counts rely on; hypothesis searches the input space for a
counter-example (and shrinks it) instead of the few hand-picked cases of the unit tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from wsi_screen.aggregate import proportion_ci  # noqa: E402
from wsi_screen.aggregate import summarize  # noqa: E402
from wsi_screen.config import AggregateConfig  # noqa: E402
from wsi_screen.config import TilingConfig  # noqa: E402
from wsi_screen.errors import ConfigError  # noqa: E402
from wsi_screen.patches import crop_patch  # noqa: E402
from wsi_screen.patches import crop_patches  # noqa: E402
from wsi_screen.sources.field import FieldSource  # noqa: E402
from wsi_screen.tiling import iter_tiles  # noqa: E402
from wsi_screen.tiling import plan_tiles  # noqa: E402
from wsi_screen.types import Cell  # noqa: E402

FAST = settings(max_examples=150, deadline=None)
SLOWER = settings(max_examples=40, deadline=None)

grids = st.tuples(
    st.integers(1, 20_000),  # width
    st.integers(1, 20_000),  # height
    st.integers(64, 4096),  # tile side at the detection scale
    st.floats(0.5, 120.0),  # overlap in microns
    st.floats(0.05, 2.0),  # microns per pixel
    st.floats(1.0, 4.0),  # level-0 pixels per tile pixel
)


def _plan(w: int, h: int, tile: int, overlap_um: float, mpp: float, scale: float):  # noqa: ANN202
    try:
        return plan_tiles(
            (w, h), TilingConfig(tile_size_px=tile, overlap_um=overlap_um), mpp=mpp, scale=scale
        )
    except ConfigError:
        overlap = math.ceil(overlap_um / mpp)
        assert overlap * 2 >= round(tile * scale)  # refused only when the overlap does not fit
        return None


@FAST
@given(grids)
def test_cores_partition_the_image_and_sit_inside_their_tiles(
    g: tuple[int, int, int, float, float, float],
) -> None:
    w, h, tile, overlap_um, mpp, scale = g
    grid = _plan(w, h, tile, overlap_um, mpp, scale)
    if grid is None:
        return
    overlap = math.ceil(overlap_um / mpp)
    for starts, cuts, length in ((grid.xs, grid.x_cuts, w), (grid.ys, grid.y_cuts, h)):
        assert cuts[0] == 0 and cuts[-1] == length
        assert all(a < b for a, b in zip(cuts, cuts[1:], strict=False))  # no empty core, no gap
        assert len(cuts) == len(starts) + 1
        for i, s in enumerate(starts):
            assert s <= cuts[i] and cuts[i + 1] <= s + grid.extent  # the core lies inside its tile
            if len(starts) > 1:  # an interior edge is at least half an overlap past the core
                if i > 0:
                    assert cuts[i] - s >= overlap // 2
                if i < len(starts) - 1:
                    assert s + grid.extent - cuts[i + 1] >= overlap // 2
        assert starts[-1] + grid.extent >= length  # the last tile reaches the end


@FAST
@given(grids, st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True))
def test_every_point_is_owned_by_exactly_one_tile(
    g: tuple[int, int, int, float, float, float], fx: float, fy: float
) -> None:
    w, h, tile, overlap_um, mpp, scale = g
    grid = _plan(w, h, tile, overlap_um, mpp, scale)
    if grid is None:
        return
    x, y = fx * w, fy * h
    owners = [
        (i, j)
        for j in range(len(grid.ys))
        for i in range(len(grid.xs))
        if grid.x_cuts[i] <= x < grid.x_cuts[i + 1] and grid.y_cuts[j] <= y < grid.y_cuts[j + 1]
    ]
    assert len(owners) == 1


@SLOWER
@given(
    st.integers(1, 700),
    st.integers(1, 700),
    st.sampled_from([64, 96, 128, 200]),
    st.floats(1.0, 8.0),
    st.floats(0.08, 0.5),
)
def test_tiles_cover_the_source_and_their_cores_partition_it(
    w: int, h: int, tile: int, overlap_um: float, mpp: float
) -> None:
    src = FieldSource(np.zeros((h, w, 3), np.uint8), source_id="p")
    cfg = TilingConfig(tile_size_px=tile, overlap_um=overlap_um)
    if math.ceil(overlap_um / mpp) * 2 >= tile and max(w, h) > tile:
        return
    owned = np.zeros((h, w), np.int32)
    for t in iter_tiles(src, cfg, mpp=mpp):
        assert t.pixels.shape == (tile, tile, 3) or max(w, h) <= tile
        x0, y0, x1, y1 = t.core
        assert t.x <= x0 < x1 <= t.x + t.width and t.y <= y0 < y1 <= t.y + t.height
        owned[y0:y1, x0:x1] += 1
        assert t.owns(x0, y0) and not t.owns(x1, y0) and not t.owns(x0, y1)
    assert (owned == 1).all()


cells = st.lists(
    st.tuples(st.floats(-40, 340), st.floats(-40, 260), st.integers(0, 3)), min_size=1, max_size=12
)


@SLOWER
@given(cells, st.sampled_from([16, 25, 32]), st.floats(0.05, 0.3), st.floats(0.05, 0.3))
def test_grouped_crops_equal_single_crops(
    pts: list[tuple[float, float, int]], patch: int, source_mpp: float, model_mpp: float
) -> None:
    rng = np.random.default_rng(len(pts))
    src = FieldSource(rng.integers(0, 255, (220, 300, 3), dtype=np.uint8), source_id="c")
    cs = [
        Cell(cell_id=i, source_id="c", x=x, y=y, bbox=(0, 0, 1, 1), score=1.0, detector="t", tile_index=t)
        for i, (x, y, t) in enumerate(sorted(pts, key=lambda p: p[2]))
    ]
    grouped = crop_patches(src, cs, patch_size_px=patch, source_mpp=source_mpp, model_mpp=model_mpp)
    assert len(grouped) == len(cs)
    for c, g in zip(cs, grouped, strict=True):
        single = crop_patch(src, c, patch_size_px=patch, source_mpp=source_mpp, model_mpp=model_mpp)
        assert g.shape == (patch, patch, 3) and g.dtype == np.uint8
        np.testing.assert_array_equal(g, single)


@FAST
@given(st.floats(40, 200), st.floats(40, 200), st.integers(8, 64))
def test_a_patch_at_model_scale_is_centred_on_its_cell(x: float, y: float, patch: int) -> None:
    """Same scale: the patch's centre lies in (x - 1, x] (under a pixel off, towards the origin).

    Pixel values encode their own column (red) and row (green), so the patch says where it was cut.
    (Odd sides centre on pixel ``floor(x)``, even sides on ``round(x) - 0.5``.)
    """
    img = np.zeros((250, 250, 3), np.uint8)
    img[..., 0] = np.arange(250)[None, :]
    img[..., 1] = np.arange(250)[:, None]
    src = FieldSource(img, source_id="g")
    cell = Cell(cell_id=0, source_id="g", x=x, y=y, bbox=(0, 0, 1, 1), score=1.0, detector="t")
    p = crop_patch(src, cell, patch_size_px=patch, source_mpp=0.1, model_mpp=0.1)
    assert p.shape == (patch, patch, 3)
    x0, y0 = int(p[0, 0, 0]), int(p[0, 0, 1])
    np.testing.assert_array_equal(p, img[y0 : y0 + patch, x0 : x0 + patch])  # one contiguous window
    for start, v in ((x0, x), (y0, y)):
        centre = start + (patch - 1) / 2
        assert v - 1 < centre <= v + 1e-9


CLASSES = ("ART", "BLA", "EOS", "LYT", "MON", "NGS", "NIF", "PMO", "EBO", "HAC", "MYB")


@st.composite
def calls(draw: st.DrawFn) -> tuple[list[str], np.ndarray]:
    n = draw(st.integers(0, 300))
    idx = draw(st.lists(st.integers(0, len(CLASSES) - 1), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**31))
    probs = np.random.default_rng(seed).dirichlet(np.ones(len(CLASSES)), size=n).astype(np.float32)
    if n:
        probs[np.arange(n), idx] += 1.0  # the label is the argmax
        probs /= probs.sum(axis=1, keepdims=True)
    return [CLASSES[i] for i in idx], probs.reshape(n, len(CLASSES))


@FAST
@given(calls(), st.sampled_from(["wilson", "exact"]))
def test_aggregation_counts_add_up(c: tuple[list[str], np.ndarray], method: str) -> None:
    labels, probs = c
    cfg = AggregateConfig(ci_method=method)
    s = summarize(labels, probs, CLASSES, cfg)
    n = len(labels)
    excluded = set(cfg.excluded_classes)
    assert s["cells_detected"] == n
    assert s["cells_counted"] == sum(1 for lab in labels if lab not in excluded)
    diff = s["differential"]
    assert sum(v["count"] for v in diff.values()) == s["cells_counted"]
    assert s["cells_counted"] + sum(v["count"] for v in s["excluded"].values()) == n
    if s["cells_counted"]:
        assert abs(sum(v["percent"] for v in diff.values()) - 100.0) <= 0.001 * len(diff) + 1e-9
        for v in diff.values():
            lo, hi = v["ci95"]
            assert 0.0 <= lo <= v["percent"] <= hi <= 100.0
        b = s["blast"]
        assert 0.0 <= b["percent"] <= 100.0 and 0.0 <= b["percent_prob"] <= 100.0
        assert b["ci95"][0] <= b["percent"] <= b["ci95"][1]
    else:
        assert all(v["percent"] is None and v["ci95"] is None for v in diff.values())
    assert {f["status"] for f in s["flags"]} <= {"raised", "not_raised", "not_assessable", "indeterminate"}


@FAST
@given(calls(), st.randoms(use_true_random=False))
def test_aggregation_does_not_depend_on_cell_order(c: tuple[list[str], np.ndarray], rnd) -> None:  # noqa: ANN001
    labels, probs = c
    order = list(range(len(labels)))
    rnd.shuffle(order)
    cfg = AggregateConfig()
    a = summarize(labels, probs, CLASSES, cfg)
    b = summarize([labels[i] for i in order], probs[order], CLASSES, cfg)
    for key in ("cells_detected", "cells_counted", "differential", "excluded", "me_ratio", "histogram"):
        assert a[key] == b[key]
    assert a["blast"]["count"] == b["blast"]["count"] and a["blast"]["ci95"] == b["blast"]["ci95"]
    assert a["blast"]["percent_prob"] == pytest.approx(b["blast"]["percent_prob"], abs=2e-3)
    assert [f["status"] for f in a["flags"]] == [f["status"] for f in b["flags"]]


@FAST
@given(st.integers(1, 5000), st.data(), st.sampled_from(["wilson", "exact"]))
def test_interval_contains_the_estimate_and_is_symmetric(n: int, data: st.DataObject, method: str) -> None:
    k = data.draw(st.integers(0, n))
    lo, hi = proportion_ci(k, n, method)
    assert 0.0 <= lo <= round(100.0 * k / n, 3) <= hi <= 100.0
    lo2, hi2 = proportion_ci(n - k, n, method)
    assert lo == pytest.approx(100.0 - hi2, abs=2e-3) and hi == pytest.approx(100.0 - lo2, abs=2e-3)
    if k < n:  # one more success never lowers either bound
        lo3, hi3 = proportion_ci(k + 1, n, method)
        assert lo3 >= lo - 1e-9 and hi3 >= hi - 1e-9


@FAST
@given(st.integers(1, 2000), st.data())
def test_wilson_interval_narrows_with_more_cells(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    lo, hi = proportion_ci(k, n, "wilson")
    lo4, hi4 = proportion_ci(4 * k, 4 * n, "wilson")
    assert hi4 - lo4 <= hi - lo + 2e-3
    assert proportion_ci(0, 0) is None
