"""Countable regions: score a scan on a grid of regions and decide which ones feed the differential.

A morphologist counts in the monolayer: where cells lie side by side, in focus, between the thick
body of the smear and its empty or feathered edge. Every region of a square grid (``region_um``
microns, level-0 pixels in the results) is scored in two passes:

1. on a low-resolution view (``view_mpp``, read one band of regions at a time from the pyramid
   level nearest to it, so a 100,000 px scan is never in memory): the share of foreground above
   the glass (``empty`` below ``min_foreground_fraction``), the share of dense non-nuclear pixels
   (overlapping cells: ``thick``), the share of nuclear stain in connected areas larger than
   ``clump_area_um2`` (``clumped``), and the share of near-black pixels (dust, pen, debris:
   ``artefact``);
2. on one full-resolution sample per remaining region (``focus_sample_um``, resampled to
   ``focus_mpp``), the focus: the energy of the finest detail band over that of a coarse band of
   the same sample (a difference-of-Gaussians ratio). Defocus removes fine detail first, and the
   ratio does not depend on how much is in the sample or on its contrast (``blurred`` below
   ``min_focus``, or below ``min_focus_relative`` of the source's 75th percentile).

Empty regions are decided in the first pass and never read at full resolution. Thresholds come
from :class:`~wsi_screen.config.RegionsConfig` and are echoed into reports.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.histogram import channel_percentiles
from wsi_screen.regions_config import RegionsConfig
from wsi_screen.resample import area_shrink
from wsi_screen.sources.base import ImageSource

COUNTED, EXCLUDED = "counted", "excluded"
REASONS = ("empty", "thick", "clumped", "artefact", "blurred")
"""Why a region is excluded, in the order they are tested."""
MIN_REGION_PX = 64
MAX_REGIONS = 40_000
GLASS_FLOOR = 200.0
"""The glass is at least this bright (0-255) in every channel: a view without bright glass (a thick
field, say) is measured against this instead of against its own least dense part."""


@dataclass(frozen=True)
class Region:
    """One grid region: level-0 box, decision and the scores it was decided on."""

    index: int
    x: int
    y: int
    width: int
    height: int
    status: str
    reasons: tuple[str, ...]
    scores: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """Plain form for report.json."""
        return {
            "id": self.index,
            "x": self.x,
            "y": self.y,
            "width": self.width,
            "height": self.height,
            "status": self.status,
            "reasons": list(self.reasons),
            "scores": dict(self.scores),
        }


@dataclass(frozen=True)
class RegionMap:
    """The regions of one source, row-major between level-0 column and row edges."""

    regions: tuple[Region, ...]
    x_edges: tuple[int, ...]
    y_edges: tuple[int, ...]
    view_mpp: float
    focus_reference: float | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> int:
        """Regions per row."""
        return len(self.x_edges) - 1

    def region_at(self, x: float, y: float) -> int:
        """Index of the region holding level-0 point (x, y); -1 outside the image."""
        i = bisect.bisect_right(self.x_edges, x) - 1
        j = bisect.bisect_right(self.y_edges, y) - 1
        if not (0 <= i < self.columns and 0 <= j < len(self.y_edges) - 1):
            return -1
        return j * self.columns + i

    def is_counted(self, x: float, y: float) -> bool:
        """Whether level-0 point (x, y) lies in a counted region."""
        k = self.region_at(x, y)
        return k >= 0 and self.regions[k].status == COUNTED

    def all_empty(self, box: tuple[float, float, float, float]) -> bool:
        """Whether every region that level-0 ``box`` (x0, y0, x1, y1) touches is ``empty``.

        Such a box holds no cell worth reading: the tiler skips it (empty glass is never read at
        full resolution). Outside the image counts as empty.
        """
        x0, y0, x1, y1 = box
        cols = range(max(0, bisect.bisect_right(self.x_edges, x0) - 1),
                     min(self.columns, bisect.bisect_left(self.x_edges, x1)))  # fmt: skip
        rows = range(max(0, bisect.bisect_right(self.y_edges, y0) - 1),
                     min(len(self.y_edges) - 1, bisect.bisect_left(self.y_edges, y1)))  # fmt: skip
        return all("empty" in self.regions[j * self.columns + i].reasons for j in rows for i in cols)

    def counted(self) -> list[Region]:
        """The counted regions, best focus first (the order in which a stopping rule counts them)."""
        keep = [r for r in self.regions if r.status == COUNTED]
        return sorted(keep, key=lambda r: (-(r.scores.get("quality") or 0.0), r.index))

    def summary(self) -> dict[str, Any]:
        """Areas (level-0 px and shares) of counted, excluded and empty regions, and counts per reason."""
        area = sum(r.width * r.height for r in self.regions)
        counted = sum(r.width * r.height for r in self.regions if r.status == COUNTED)
        empty = sum(r.width * r.height for r in self.regions if "empty" in r.reasons)
        reasons = {k: sum(1 for r in self.regions if k in r.reasons) for k in REASONS}
        non_empty = area - empty
        return {
            "regions": len(self.regions),
            "counted": sum(1 for r in self.regions if r.status == COUNTED),
            "excluded": sum(1 for r in self.regions if r.status == EXCLUDED),
            "reasons": reasons,
            "counted_area_fraction": round(counted / area, 4) if area else 0.0,
            "counted_fraction_of_non_empty": round(counted / non_empty, 4) if non_empty else 0.0,
            "grid": [self.columns, len(self.y_edges) - 1],
            "view_mpp": self.view_mpp,
            "focus_reference": self.focus_reference,
        }


def od_above(rgb: NDArray[np.uint8], glass: NDArray[np.float32]) -> NDArray[np.float32]:
    """Optical density above the glass, summed over R, G and B (0 for glass, ~1.4 for a nucleus)."""
    od = np.log10((glass + 1.0) / (rgb.astype(np.float32) + 1.0))
    return np.asarray(np.clip(od, 0.0, None).sum(axis=2), dtype=np.float32)


def glass_colour(source: ImageSource, max_side: int = 1024) -> NDArray[np.float32]:
    """Per-channel brightness of the glass: the 99.5th percentile of a thumbnail, at least :data:`GLASS_FLOOR`."""
    return np.maximum(channel_percentiles(source.thumbnail(max_side), 99.5), GLASS_FLOOR).astype(np.float32)


def focus_score(grey: NDArray[np.floating[Any]] | NDArray[np.uint8]) -> float | None:
    """Fine-to-coarse detail energy of a grey sample at the focus scale; None if it has no detail.

    The fine band is the difference of Gaussians of sigma 1 and 2 px, the coarse band of 4 and
    8 px. Defocus lowers the ratio (a sharp Matek field at 0.25 um/px scores about 0.14, the same
    field blurred with sigma 0.4 um about 0.06); stain, brightness and cell density barely change it.
    """
    g = np.asarray(grey, dtype=np.float32)
    blur = {s: cv2.GaussianBlur(g, (0, 0), s) for s in (1.0, 2.0, 4.0, 8.0)}
    fine = float(np.var(blur[1.0] - blur[2.0]))
    coarse = float(np.var(blur[4.0] - blur[8.0]))
    if coarse < 1.0:  # under one grey level of structure: nothing to judge focus on
        return None
    return fine / coarse


def nuclear_mask(view: NDArray[np.uint8], cfg: RegionsConfig) -> NDArray[np.bool_]:
    """Nuclear-stain pixels of a view: blue excess ``B - G`` above ``nucleus_blue_excess``."""
    excess = view[:, :, 2].astype(np.int16) - view[:, :, 1].astype(np.int16)
    return np.asarray(excess > cfg.nucleus_blue_excess, dtype=np.bool_)


def cell_mask(view: NDArray[np.uint8], glass: NDArray[np.float32], cfg: RegionsConfig) -> NDArray[np.bool_]:
    """Pixels of nuclear stain or of overlapping cells (dense): what piles up in a clump.

    Cells piled on each other lose their blue excess as every channel darkens, so density counts too.
    """
    return nuclear_mask(view, cfg) | (od_above(view, glass) > cfg.dense_od)


def view_scores(
    view: NDArray[np.uint8],
    *,
    view_mpp: float,
    glass: NDArray[np.float32],
    cfg: RegionsConfig,
    clumps: NDArray[np.bool_] | None = None,
) -> tuple[dict[str, float | None], NDArray[np.uint8]]:
    """Low-resolution scores of one region's view pixels, and its foreground mask (0/1).

    Args:
        view: the region at ``view_mpp``.
        view_mpp: microns per view pixel.
        glass: per-channel brightness of the glass (:func:`glass_colour`).
        cfg: thresholds.
        clumps: the region's share of a :func:`clump_mask` found on a larger view (a clump on the
            region's edge keeps its size); None finds clumps in ``view`` itself.

    Returns:
        ``foreground_fraction``, ``dense_fraction`` (dense pixels that are not nuclear stain),
        ``nuclear_fraction``, ``clump_fraction`` (share of the :func:`cell_mask` in clumps; None
        with less of it than one nucleus, 50 um2) and ``black_fraction``.
    """
    od = od_above(view, glass)
    fg = od > cfg.background_od
    nuclear = nuclear_mask(view, cfg)
    dense = od > cfg.dense_od
    cells = nuclear | dense
    if clumps is None:
        clumps = clump_mask(cells, view_mpp=view_mpp, cfg=cfg)
    black = np.all(view < cfg.black_level, axis=2)
    n = float(fg.size)
    stain = float(cells.sum())
    scores: dict[str, float | None] = {
        "foreground_fraction": float(fg.sum()) / n,
        "dense_fraction": float((dense & ~nuclear).sum()) / n,
        "nuclear_fraction": float(nuclear.sum()) / n,
        "clump_fraction": float((clumps & cells).sum()) / stain if stain >= 50.0 / view_mpp**2 else None,
        "black_fraction": float(black.sum()) / n,
    }
    return scores, fg.astype(np.uint8)


def clump_mask(cells: NDArray[np.bool_], *, view_mpp: float, cfg: RegionsConfig) -> NDArray[np.bool_]:
    """Pixels of ``cells`` (:func:`cell_mask`) in connected areas larger than ``clump_area_um2``.

    Stain closer than ``clump_join_um`` is one area: the nuclei of touching cells lie a
    cytoplasm's width apart.
    """
    mask = cells.astype(np.uint8)
    d = round(cfg.clump_join_um / view_mpp)
    if d >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
        mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel), dtype=np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] * view_mpp**2 > cfg.clump_area_um2
    big[0] = False
    return np.asarray(big[labels], dtype=np.bool_) & cells


def decide(
    scores: dict[str, float | None], cfg: RegionsConfig, focus_reference: float | None
) -> tuple[str, ...]:
    """The reasons (in :data:`REASONS` order) a region with these scores is excluded; empty: counted."""
    reasons: list[str] = []
    if (scores["foreground_fraction"] or 0.0) < cfg.min_foreground_fraction:
        return ("empty",)
    if (scores["dense_fraction"] or 0.0) > cfg.max_dense_fraction:
        reasons.append("thick")
    clump = scores.get("clump_fraction")
    if clump is not None and clump > cfg.max_clump_fraction:
        reasons.append("clumped")
    if (scores["black_fraction"] or 0.0) > cfg.max_black_fraction:
        reasons.append("artefact")
    focus = scores.get("focus")
    if focus is not None:
        low_rel = focus_reference is not None and focus < cfg.min_focus_relative * focus_reference
        if focus < cfg.min_focus or low_rel:
            reasons.append("blurred")
    return tuple(reasons)


def _level_for(source: ImageSource, scale: float) -> tuple[int, float]:
    """The coarsest pyramid level no coarser than ``scale`` level-0 px per output px, and its downsample."""
    level = 0
    for i, ds in enumerate(source.level_downsamples):
        if ds <= scale * 1.001:
            level = i
    return level, float(source.level_downsamples[level])


def _read_scaled(source: ImageSource, x: int, y: int, w: int, h: int, scale: float) -> NDArray[np.uint8]:
    """Level-0 box (x, y, w, h) read from the best level and resized to ``scale`` level-0 px per px."""
    level, ds = _level_for(source, scale)
    pixels = source.read_region(x, y, max(1, math.ceil(w / ds)), max(1, math.ceil(h / ds)), level=level)
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    if pixels.shape[1] > size[0] and pixels.shape[0] > size[1]:
        return area_shrink(pixels, size)[0]
    return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


def score_regions(source: ImageSource, cfg: RegionsConfig, *, mpp: float) -> RegionMap:
    """Score and decide every region of ``source`` (see the module docstring).

    Args:
        source: the field or slide.
        cfg: thresholds.
        mpp: microns per level-0 pixel (already resolved).

    Returns:
        The region map: ``region_um`` is rounded so that equal regions cover the image.
    """
    w, h = source.dimensions
    # a region is at least MIN_REGION_PX across, and a scan has at most MAX_REGIONS of them (a
    # wrong pixel size or a huge scan would otherwise make millions): they then grow, as recorded
    side = max(cfg.region_um / mpp, MIN_REGION_PX, math.sqrt(w * h / MAX_REGIONS))
    x_edges = _edges(w, side)
    y_edges = _edges(h, side)
    view_scale = max(1.0, cfg.view_mpp / mpp)
    view_mpp = mpp * view_scale
    glass = glass_colour(source)
    # clumps are found on a band reaching past its row of regions, so a clump on a row seam keeps its size
    margin = round(2 * math.sqrt(cfg.clump_area_um2) / mpp)
    boxes: list[tuple[int, int, int, int]] = []
    scores: list[dict[str, float | None]] = []
    masks: list[NDArray[np.uint8]] = []
    for y0, y1 in itertools.pairwise(y_edges):
        by0, by1 = max(0, y0 - margin), min(h, y1 + margin)
        band = _read_scaled(source, 0, by0, w, by1 - by0, view_scale)
        f = band.shape[0] / (by1 - by0)  # view px per level-0 px along y (x: band.shape[1] / w)
        clumps = clump_mask(cell_mask(band, glass, cfg), view_mpp=view_mpp, cfg=cfg)
        fx = band.shape[1] / w
        for x0, x1 in itertools.pairwise(x_edges):
            vy0, vy1 = round((y0 - by0) * f), max(round((y0 - by0) * f) + 1, round((y1 - by0) * f))
            vx0, vx1 = round(x0 * fx), max(round(x0 * fx) + 1, round(x1 * fx))
            s, fg = view_scores(
                band[vy0:vy1, vx0:vx1],
                view_mpp=view_mpp,
                glass=glass,
                cfg=cfg,
                clumps=clumps[vy0:vy1, vx0:vx1],
            )
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            scores.append(s)
            masks.append(fg)
    _add_focus(source, cfg, mpp=mpp, view_scale=view_scale, boxes=boxes, scores=scores, masks=masks)
    focus = [v for s in scores if (v := s.get("focus")) is not None]
    ref = float(np.percentile(focus, 75)) if focus and cfg.min_focus_relative > 0 else None
    regions = []
    for k, (box, s) in enumerate(zip(boxes, scores, strict=True)):
        reasons = decide(s, cfg, ref)
        s["quality"] = _quality(s, ref)
        rounded = {key: None if v is None else round(float(v), 4) for key, v in s.items()}
        regions.append(Region(k, *box, EXCLUDED if reasons else COUNTED, reasons, rounded))
    return RegionMap(tuple(regions), x_edges, y_edges, round(view_mpp, 4), ref, _config_echo(cfg))


def _edges(length: int, side: float) -> tuple[int, ...]:
    """Edges of ``round(length / side)`` (at least 1) equal parts of ``length``."""
    n = max(1, round(length / side))
    return tuple(round(i * length / n) for i in range(n + 1))


def _add_focus(
    source: ImageSource,
    cfg: RegionsConfig,
    *,
    mpp: float,
    view_scale: float,
    boxes: list[tuple[int, int, int, int]],
    scores: list[dict[str, float | None]],
    masks: list[NDArray[np.uint8]],
) -> None:
    """Measure focus on one full-resolution sample per non-empty region, where its foreground is densest."""
    focus_scale = max(1.0, cfg.focus_mpp / mpp)
    sample = round(cfg.focus_sample_um / mpp)  # level-0 px
    for (x, y, bw, bh), s, fg in zip(boxes, scores, masks, strict=True):
        s["focus"] = None
        if (s["foreground_fraction"] or 0.0) < cfg.min_foreground_fraction:
            continue
        k = max(1, round(sample / view_scale))
        density = cv2.boxFilter(fg.astype(np.float32), -1, (k, k), borderType=cv2.BORDER_REPLICATE)
        vy, vx = np.unravel_index(int(np.argmax(density)), density.shape)
        cx, cy = x + (vx + 0.5) * view_scale, y + (vy + 0.5) * view_scale
        sw, sh = min(sample, bw), min(sample, bh)
        sx = int(min(max(cx - sw / 2, x), x + bw - sw))
        sy = int(min(max(cy - sh / 2, y), y + bh - sh))
        rgb = _read_scaled(source, sx, sy, sw, sh, focus_scale)
        if min(rgb.shape[:2]) < 32:
            continue
        s["focus"] = focus_score(np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8))


def _quality(s: dict[str, float | None], focus_reference: float | None) -> float:
    """Order of counting (1 best): relative focus, less clumped and less dense first."""
    focus = s.get("focus")
    rel = 1.0 if focus is None or not focus_reference else min(1.0, focus / focus_reference)
    return rel * (1.0 - (s.get("clump_fraction") or 0.0)) * (1.0 - (s.get("dense_fraction") or 0.0))


def _config_echo(cfg: RegionsConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(cfg)
