"""Red cells in a smear image: the whole, isolated ones, and their diameters in pixels.

On the image shrunk to a working size: the background is the brightest major peak of the green
channel's histogram (eosin, haemoglobin and nuclei absorb green); cells are the pixels darker than
halfway between it and the median of the clearly darker pixels (the edge at half contrast), holes
filled (a red cell's pale centre). An object is a red cell when it is whole (off the border), round
and convex (its ellipse of inertia), not a ring of cells around a gap (little filled hole),
absorbing blue as a red cell does (white cells and platelets are violet: they pass blue) and
without strongly stained pixels (nuclei). Cells small at the working size are measured again
finer, on the image's centre. :mod:`wsi_screen.scale_estimate` turns the diameters into um/px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.resample import area_shrink

WORK_PIXELS = 400_000  # the working image's size; cells under 16 px there are measured again finer,
MIN_WORK_DIAMETER, TARGET_WORK_DIAMETER = 16.0, 24.0  # at 24 px, on a centre crop of that size
MIN_WORK_AREA = 20  # objects under 20 working pixels are noise
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class RedCellLimits:
    """What makes an object a red cell, and how many are needed (tunable from configuration).

    Attributes:
        min_cells: Fewest red cells an estimate rests on.
        max_spread: Largest interquartile range of the kept diameters over their median.
        min_mode_share: Smallest share of the candidates that the window around the mode keeps.
        window: Diameters kept around the mode, as factors of its median (low, high).
        min_axis_ratio: Smallest minor/major axis ratio of an object's ellipse of inertia.
        min_ellipse_fill: Smallest area over that ellipse's (1 for an ellipse, 0.89 for 2 discs).
        max_hole_share: Largest share of an object's area that hole filling added.
        min_blue_ratio: Smallest blue/green optical density of a red cell (violet cells pass blue).
        stain_factor: Strongly stained: above this multiple of the cell pixels' lower-quartile
            optical density (and 0.25 above it).
        max_stained_share: Largest share of strongly stained pixels in a red cell.
        min_diameter_px: Objects narrower (input pixels) are dirt: a red cell so small would mean
            over 0.75 um/px, coarser than any screening scan.
    """

    min_cells: int = 15
    max_spread: float = 0.2
    min_mode_share: float = 0.6
    window: tuple[float, float] = (0.75, 1.33)
    min_axis_ratio: float = 0.8
    min_ellipse_fill: float = 0.93
    max_hole_share: float = 0.5
    min_blue_ratio: float = 0.35
    stain_factor: float = 2.2
    max_stained_share: float = 0.05
    min_diameter_px: float = 10.0


DEFAULT_LIMITS = RedCellLimits()


def red_cell_diameters(rgb: NDArray[np.uint8], limits: RedCellLimits = DEFAULT_LIMITS) -> Floats:
    """Equivalent diameters (input pixels) of the objects of one image that pass as red cells."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 8:
        msg = f"red-cell scale needs a uint8 H x W x 3 image of 8 px or more, not {rgb.dtype} {rgb.shape}"
        raise ValueError(msg)
    h, w = rgb.shape[:2]
    factor = max(1.0, math.sqrt(h * w / WORK_PIXELS))
    d = _measure(rgb, factor, limits)
    mode = size_mode(d, limits)
    if factor > 1 and (mode.size < limits.min_cells or float(np.median(mode)) / factor < MIN_WORK_DIAMETER):
        fine = max(1.0, float(np.median(mode)) / TARGET_WORK_DIAMETER) if mode.size else 1.0
        side = int(math.sqrt(WORK_PIXELS) * fine)  # small cells: a centre crop, measured finer
        y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        finer = _measure(rgb[y0 : y0 + side, x0 : x0 + side], fine, limits)
        if size_mode(finer, limits).size >= min(mode.size, limits.min_cells):  # finer, if enough
            return finer
    return d


def size_mode(d: Floats, limits: RedCellLimits) -> Floats:
    """The diameters in a window around the size mode (sorted).

    The window starts at the area-weighted median (specks of dirt are many but small) and is
    re-centred on the median of what it holds.
    """
    if d.size == 0:
        return d
    d = np.sort(d)
    med = float(d[np.searchsorted(np.cumsum(d**2), np.sum(d**2) / 2)])
    for _ in range(3):
        d = d[(d >= limits.window[0] * med) & (d <= limits.window[1] * med)]
        med = float(np.median(d))
    return d


def _measure(rgb: NDArray[np.uint8], factor: float, limits: RedCellLimits) -> Floats:
    """Diameters (input pixels) of the red cells of ``rgb`` found at ``1 / factor`` of its size."""
    h, w = rgb.shape[:2]
    work, scale = rgb, 1.0
    if factor > 1:
        size = (max(8, round(w / factor)), max(8, round(h / factor)))
        work, covered = area_shrink(np.ascontiguousarray(rgb), size)
        scale = math.sqrt(covered[0] * covered[1] / (size[0] * size[1]))
    area, keep, _ = _cells(work, limits)
    d = np.sqrt(4 * area[keep] / np.pi) * scale
    return d[d >= limits.min_diameter_px]


def _cells(
    work: NDArray[np.uint8], limits: RedCellLimits
) -> tuple[Floats, NDArray[np.bool_], NDArray[np.int32]]:
    """(area of each object, which pass as red cells, label image) of the working image."""
    green = np.ascontiguousarray(work[:, :, 1])
    levels = _levels(green)
    if levels is None:
        return np.zeros(1), np.zeros(1, bool), np.zeros(green.shape, np.int32)
    mask = (green < levels[1]).astype(np.uint8)
    filled = np.pad(mask, 1)
    cv2.floodFill(filled, None, (0, 0), 2, flags=4)  # the outside becomes 2: the rest is cells and holes
    n, found, stats, _ = cv2.connectedComponentsWithStats(
        (filled[1:-1, 1:-1] != 2).astype(np.uint8), connectivity=4
    )
    labels = np.asarray(found, dtype=np.int32)
    lab, inside = labels.ravel(), mask.ravel() > 0
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)

    per: Floats = np.maximum(area, 1.0)

    def mean(weights: Floats, where: NDArray[np.bool_] | None = None) -> Floats:
        return np.bincount(lab if where is None else lab[where], weights, minlength=n) / per

    ys, xs = (a.ravel() for a in np.indices(green.shape, dtype=np.float64))
    cx, cy = mean(xs), mean(ys)
    sxx, syy, sxy = mean(xs * xs) - cx * cx, mean(ys * ys) - cy * cy, mean(xs * ys) - cx * cy
    root = np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)
    major = np.maximum((sxx + syy) / 2 + root, 1e-9)
    minor = np.maximum((sxx + syy) / 2 - root, 1e-9)
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    x1, y1 = x0 + stats[:, cv2.CC_STAT_WIDTH], y0 + stats[:, cv2.CC_STAT_HEIGHT]
    keep: NDArray[np.bool_] = (
        (x0 > 0) & (y0 > 0) & (x1 < green.shape[1]) & (y1 < green.shape[0])  # whole, off the border
        & (area >= MIN_WORK_AREA)
        & (np.sqrt(minor / major) >= limits.min_axis_ratio)
        & (area / (4 * np.pi * np.sqrt(major * minor)) >= limits.min_ellipse_fill)
        & (1 - mean(inside.astype(np.float64)) <= limits.max_hole_share)
    )  # fmt: skip
    keep[0] = False  # the background
    if not keep.any():
        return area, keep, labels
    background = np.median(work.reshape(-1, 3)[green.ravel() >= levels[0]], axis=0)
    od = [np.log(max(b, 1.0) / np.maximum(np.arange(256.0), 1.0)).clip(0, None) for b in background]
    od_g, od_b = od[1][green.ravel()][inside], od[2][work[:, :, 2].ravel()][inside]
    level = float(np.percentile(od_g, 25))  # red cells and cytoplasm, not nuclei
    stained = (od_g > max(limits.stain_factor * level, level + 0.25)).astype(np.float64)
    keep &= mean(stained, inside) <= limits.max_stained_share
    keep &= mean(od_b, inside) >= limits.min_blue_ratio * mean(od_g, inside)
    return area, keep, labels


def _levels(green: NDArray[np.uint8]) -> tuple[float, float] | None:
    """(background level, cell threshold) of the green channel; None when nothing is darker.

    Background: the brightest histogram peak a quarter as high as the highest, its noise from its
    bright flank. Threshold: halfway to the median of the pixels clearly darker (half contrast).
    """
    hist = np.bincount(green.ravel(), minlength=256).astype(np.float64)
    smooth = np.convolve(hist, np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2), mode="same")
    peak = (smooth >= 0.25 * smooth.max()) & (smooth >= np.roll(smooth, 1)) & (smooth >= np.roll(smooth, -1))
    bg = int(np.flatnonzero(peak).max())
    below_half = np.flatnonzero(smooth[bg:] < smooth[bg] / 2)
    noise = max(1.0, (int(below_half[0]) if below_half.size else 255 - bg) / 1.1774)  # half width
    dark = green[green < bg - 4 * noise - 4]
    if dark.size < 0.01 * green.size:
        return None
    return float(bg), (bg + float(np.median(dark))) / 2
