"""Classical foreground-ratio cell localiser (after Krappe et al. 2014), OpenCV only.

White cells in May-Grünwald-Giemsa smears have deep blue-violet nuclei; red cells are pink-grey
and the smear background is pale. The blue excess ``B - G`` separates nuclei from both. Nuclear
fragments of one cell (the lobes of a segmented neutrophil) are joined by a closing; touching
cells are split by a watershed on the distance transform. Every size is in microns and converted
with the tile's pixel size, so the detector works at any scan resolution. No torch import.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.detectors.base import BaseDetector
from wsi_screen.errors import ConfigError
from wsi_screen.resample import area_shrink
from wsi_screen.types import Cell
from wsi_screen.types import Tile


@dataclass(frozen=True)
class ForegroundOptions:
    """Options of the foreground detector (all sizes in microns).

    Attributes:
        min_blue_excess: lower bound on the Otsu threshold of ``B - G`` (0-255 scale).
        join_um: closing diameter that merges nuclear lobes of one cell.
        min_area_um2: smallest nucleus area kept (debris, platelets and fragments are smaller).
        max_area_um2: largest single-cell area before the blob is treated as touching cells.
        split_distance_um: minimum distance between the centres of two touching cells.
        cell_diameter_um: typical cell diameter; sets the reported box around each centre.
        work_mpp: pixel size (um/px) the masks are computed at; tiles finer than this are
            shrunk to it first (area averaging), which makes the morphology about
            ``(work_mpp / mpp)^2`` times cheaper. Centres are mapped back to the tile's pixels.
            0 computes at the tile's own resolution.
        blur_um: Gaussian smoothing of the blue excess before thresholding (5 px at 0.0862 um/px).
    """

    min_blue_excess: float = 35.0
    join_um: float = 2.0
    min_area_um2: float = 12.0
    max_area_um2: float = 300.0
    split_distance_um: float = 7.0
    cell_diameter_um: float = 14.0
    work_mpp: float = 0.35
    blur_um: float = 0.43

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if key == "work_mpp" and (value == 0 or 0.01 <= value <= 2.0):
                continue
            if key == "work_mpp":
                msg = f"detector.options.work_mpp must be 0 (native) or 0.01-2.0 um/px, got {value}"
                raise ConfigError(msg)
            if not value > 0:
                msg = f"detector.options.{key} must be > 0, got {value}"
                raise ConfigError(msg)
        if self.min_area_um2 >= self.max_area_um2:
            msg = "detector.options.min_area_um2 must be below max_area_um2"
            raise ConfigError(msg)


def nucleus_mask(rgb: NDArray[np.uint8], min_blue_excess: float, blur_px: int = 5) -> NDArray[np.uint8]:
    """Binary mask (0/255) of stained nuclear foreground (``blur_px``: odd kernel, 1 = none)."""
    excess = cv2.subtract(rgb[:, :, 2], rgb[:, :, 1])  # saturating B - G
    if blur_px > 1:
        excess = cv2.GaussianBlur(excess, (blur_px, blur_px), 0)
    otsu, _ = cv2.threshold(excess, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    thr = max(float(otsu), min_blue_excess)
    _, mask = cv2.threshold(excess, thr, 255, cv2.THRESH_BINARY)
    return np.asarray(mask, dtype=np.uint8)


def _disk(diameter_px: float) -> NDArray[np.uint8]:
    d = max(3, int(round(diameter_px)) | 1)
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)), dtype=np.uint8)


def _split_centres(component: NDArray[np.uint8], min_dist_px: float) -> list[tuple[float, float]]:
    """Centres of touching cells in one blob: maxima of the distance transform."""
    dist = cv2.distanceTransform(component, cv2.DIST_L2, 5)
    kernel = _disk(min_dist_px)
    peaks = (dist == cv2.dilate(dist, kernel)) & (dist >= 0.5 * min_dist_px)
    n, labels = cv2.connectedComponents(peaks.astype(np.uint8))
    if n <= 2:  # one peak (or a plateau): a single cell
        m = cv2.moments(component, binaryImage=True)
        return [(m["m10"] / m["m00"], m["m01"] / m["m00"])]
    markers = labels.astype(np.int32) + 1
    markers[component == 0] = 0
    markers[(component > 0) & (labels == 0)] = 0
    span = float(dist.max() - dist.min())  # > 0: there are at least two peaks
    scaled = (dist - dist.min()) * (255.0 / span)  # min-max to 0..255, as cv2.NORM_MINMAX
    bgr = cv2.cvtColor(scaled.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    markers[component == 0] = 1
    cv2.watershed(bgr, markers)
    centres = []
    for lab in range(2, n + 1):
        ys, xs = np.nonzero(markers == lab)
        if len(xs):
            centres.append((float(xs.mean()), float(ys.mean())))
    return centres


class ForegroundDetector(BaseDetector):
    """Foreground-ratio localiser; see the module docstring.

    Example:
        >>> det = ForegroundDetector(min_area_um2=15.0)
        >>> det.name
        'foreground'
    """

    name = "foreground"

    def __init__(self, **options: Any) -> None:
        try:
            self.options = ForegroundOptions(**options)
        except TypeError as e:
            known = ", ".join(ForegroundOptions.__dataclass_fields__)
            msg = f"detector.options: {e}; known options: {known}"
            raise ConfigError(msg) from e

    def params(self) -> dict[str, Any]:
        """Options echoed into reports."""
        return asdict(self.options)

    def find_centres(self, rgb: NDArray[np.uint8], mpp: float) -> list[tuple[float, float, float]]:
        """Return (x, y, score) of cell centres in pixel coordinates of ``rgb``.

        The score is the mean blue excess of the cell's nucleus scaled to 0-1.
        """
        o = self.options
        px_per_um = 1.0 / mpp
        mask = nucleus_mask(rgb, o.min_blue_excess, int(round(o.blur_um * px_per_um)) | 1)
        mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(0.4 * px_per_um)), dtype=np.uint8)
        joined = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(o.join_um * px_per_um))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        min_area = o.min_area_um2 * px_per_um**2
        max_area = o.max_area_um2 * px_per_um**2
        excess = cv2.subtract(rgb[:, :, 2], rgb[:, :, 1])
        out: list[tuple[float, float, float]] = []
        for lab in range(1, n):
            area = stats[lab, cv2.CC_STAT_AREA]
            if area < min_area:
                continue
            x0, y0, w, h = (int(v) for v in stats[lab, :4])
            comp = (labels[y0 : y0 + h, x0 : x0 + w] == lab).astype(np.uint8)
            if area > max_area:
                centres = _split_centres(np.pad(comp, 1), o.split_distance_um * px_per_um)
                centres = [(cx - 1, cy - 1) for cx, cy in centres]
            else:
                m = cv2.moments(comp, binaryImage=True)
                centres = [(m["m10"] / m["m00"], m["m01"] / m["m00"])]
            score = float(excess[y0 : y0 + h, x0 : x0 + w][comp > 0].mean()) / 255.0
            out.extend((x0 + cx, y0 + cy, min(1.0, score * 2.0)) for cx, cy in centres)
        return out

    def find_centres_at_work_scale(
        self, rgb: NDArray[np.uint8], mpp: float
    ) -> list[tuple[float, float, float]]:
        """:meth:`find_centres` on ``rgb`` shrunk to ``work_mpp``; centres in ``rgb``'s pixels."""
        factor = self.options.work_mpp / mpp
        if factor <= 1.25:  # already coarse enough: shrinking would save little
            return self.find_centres(rgb, mpp)
        h, w = rgb.shape[:2]
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        small, (cw, ch) = area_shrink(rgb, size)
        sx, sy = cw / size[0], ch / size[1]
        found = self.find_centres(small, mpp * math.sqrt(sx * sy))
        return [((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, score) for x, y, score in found]

    def detect(self, tile: Tile) -> list[Cell]:
        """Detect cells in a tile and keep those whose centre the tile owns."""
        half = 0.5 * self.options.cell_diameter_um / tile.mpp * tile.scale
        cells = []
        for px, py, score in self.find_centres_at_work_scale(tile.pixels, tile.mpp):
            x, y = tile.to_level0(px, py)
            if not tile.owns(x, y):
                continue
            bbox = (math.floor(x - half), math.floor(y - half), math.ceil(x + half), math.ceil(y + half))
            cells.append(Cell(-1, tile.source_id, x, y, bbox, score, self.name, tile.index))
        return cells
