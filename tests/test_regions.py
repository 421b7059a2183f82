"""Countable-region scoring on synthetic (and, where ../shared/data exists, real) smear areas."""

from __future__ import annotations

from pathlib import Path

import _regions_synthetic as rs
import numpy as np
import pytest
from _synthetic import write_pyramidal_tiff

from wsi_screen.errors import ConfigError
from wsi_screen.regions import COUNTED
from wsi_screen.regions import RegionMap
from wsi_screen.regions import focus_score
from wsi_screen.regions import score_regions
from wsi_screen.regions_config import RegionsConfig
from wsi_screen.sources import FieldSource
from wsi_screen.sources import open_source

MPP = 0.25
W, H = 1200, 800  # 300 x 200 um: 3 x 2 regions of 100 um


def _score(img: np.ndarray, mpp: float = MPP, cfg: RegionsConfig | None = None) -> RegionMap:
    return score_regions(FieldSource(img), cfg or RegionsConfig(), mpp=mpp)


def _reasons(rmap: RegionMap) -> set[str]:
    return {r for reg in rmap.regions for r in reg.reasons}


@pytest.fixture(scope="module")
def mono() -> np.ndarray:
    return rs.monolayer(W, H, mpp=MPP, seed=1)[0]


def test_a_monolayer_is_counted_everywhere(mono: np.ndarray) -> None:
    rmap = _score(mono)
    assert len(rmap.regions) == 6 and (rmap.columns, len(rmap.y_edges) - 1) == (3, 2)
    assert all(r.status == COUNTED and r.reasons == () for r in rmap.regions)
    assert all(r.scores["focus"] is not None and r.scores["focus"] > 0.1 for r in rmap.regions)
    assert rmap.summary()["counted_area_fraction"] == 1.0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: rs.empty(W, H, seed=2), "empty"),
        (lambda: rs.thick(W, H, mpp=MPP, seed=3), "thick"),
        (lambda: rs.clumped(W, H, mpp=MPP, seed=4)[0], "clumped"),
    ],
    ids=["empty", "thick", "clumped"],
)
def test_uncountable_areas_are_excluded_with_their_reason(make, reason: str) -> None:
    rmap = _score(make())
    assert all(r.status == "excluded" and reason in r.reasons for r in rmap.regions)
    if reason == "empty":
        assert all(r.scores["focus"] is None for r in rmap.regions)  # never read at full resolution


def test_blur_is_excluded_and_mild_blur_is_not(mono: np.ndarray) -> None:
    sharp = focus_score(mono[:, :, 1])
    assert sharp is not None
    assert _reasons(_score(rs.blurred(mono, sigma_um=0.8, mpp=MPP))) == {"blurred"}
    mild = _score(rs.blurred(mono, sigma_um=0.1, mpp=MPP))
    assert all(r.status == COUNTED for r in mild.regions)
    assert focus_score(np.full((64, 64), 200, np.uint8)) is None  # no structure: focus not judged


def test_relative_focus_excludes_the_blurred_part_of_a_source(mono: np.ndarray) -> None:
    half = mono.copy()
    half[:, : W // 3] = rs.blurred(mono, sigma_um=0.45, mpp=MPP)[:, : W // 3]
    rmap = _score(half)
    left = [r for r in rmap.regions if r.x == 0]
    assert all("blurred" in r.reasons for r in left)
    assert all(r.status == COUNTED for r in rmap.regions if r.x > 0)
    off = _score(half, cfg=RegionsConfig(min_focus_relative=0.0, min_focus=0.02))
    assert all(r.status == COUNTED for r in off.regions)  # thresholds come from the configuration


def test_region_lookup_and_plain_form(mono: np.ndarray) -> None:
    rmap = _score(mono)
    assert rmap.region_at(0, 0) == 0 and rmap.region_at(W - 1, H - 1) == 5
    assert rmap.region_at(401, 0) == 1 and rmap.region_at(-1, 3) == -1 and rmap.region_at(W, 0) == -1
    d = rmap.regions[4].to_dict()
    assert (d["x"], d["y"], d["width"], d["height"], d["status"]) == (400, 400, 400, 400, "counted")
    assert set(d["scores"]) >= {"foreground_fraction", "dense_fraction", "clump_fraction", "focus", "quality"}
    assert [r.index for r in rmap.counted()] == sorted(
        range(6), key=lambda k: (-(rmap.regions[k].scores["quality"] or 0), k)
    )


def test_a_slide_of_good_and_bad_fields(tmp_path: Path, mono: np.ndarray) -> None:
    """4 monolayer fields, 1 blurred, 1 clumped, as a pyramidal TIFF: bad fields out, good ones in."""
    fields = [
        [mono, rs.monolayer(W, H, mpp=MPP, seed=5)[0], rs.blurred(mono, sigma_um=0.6, mpp=MPP)],
        [rs.clumped(W, H, mpp=MPP, seed=6)[0], rs.monolayer(W, H, mpp=MPP, seed=7)[0], mono[::-1].copy()],
    ]
    path = write_pyramidal_tiff(tmp_path / "slide.tiff", rs.mosaic(fields), mpp=MPP, levels=3)
    with open_source(path) as src:
        rmap = score_regions(src, RegionsConfig(), mpp=MPP)
    bad = {(2, 0): "blurred", (0, 1): "clumped"}
    for (fx, fy), reason in bad.items():
        regs = [r for r in rmap.regions if r.x // W == fx and r.y // H == fy]
        assert regs and all(reason in r.reasons for r in regs)
    good = [r for r in rmap.regions if (r.x // W, r.y // H) not in bad]
    assert all(r.status == COUNTED for r in good)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"regions\.region_um must be a positive number"):
        RegionsConfig(region_um=0)
    with pytest.raises(ConfigError, match=r"regions\.max_clump_fraction must be in \[0, 1\]"):
        RegionsConfig(max_clump_fraction=1.5)
    with pytest.raises(ConfigError, match=r"regions\.view_mpp .* quarter"):
        RegionsConfig(view_mpp=50.0)
    with pytest.raises(ConfigError, match=r"regions\.focus_sample_um"):
        RegionsConfig(focus_sample_um=2.0)


@pytest.mark.skipif(rs.real_patches(1) is None, reason="../shared/data/matek_bm is absent")
def test_real_patches_monolayer_counted_clumps_and_blur_excluded() -> None:
    patches = rs.real_patches(60, seed=0)
    assert patches is not None
    field = rs.real_monolayer(patches)
    assert all(r.status == COUNTED for r in _score(field, 0.0862).regions)
    assert all("clumped" in r.reasons for r in _score(rs.real_clumped(patches), 0.0862).regions)
    blurred = _score(rs.blurred(field, sigma_um=0.6, mpp=0.0862), 0.0862)
    assert all("blurred" in r.reasons for r in blurred.regions)
