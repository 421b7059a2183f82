"""Synthetic smear fields of known pixel size for the red-cell scale estimator.

Pink red cells (a pale centre, diameters drawn around a known mean in microns), some of them
touching or overlapping, white cells with a dark violet nucleus, small violet platelets, a tint,
optical blur and noise. With ``n_rbc=0`` the field has white cells and platelets only.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

BACKGROUND = np.array([236.0, 226.0, 222.0])
RBC_RIM = np.array([214.0, 150.0, 160.0])
RBC_CENTRE = np.array([228.0, 196.0, 198.0])
CYTOPLASM = np.array([200.0, 184.0, 216.0])
NUCLEUS = np.array([88.0, 40.0, 150.0])
PLATELET = np.array([150.0, 100.0, 180.0])


def _disc(img: NDArray[np.float32], x: float, y: float, r: float, colour: NDArray[np.float64]) -> None:
    """Paint a disc of radius ``r`` (pixels, exact to a tenth of a pixel: edge pixels blend by coverage)."""
    h, w = img.shape[:2]
    x0, x1 = max(0, int(x - r - 2)), min(w, int(x + r + 3))
    y0, y1 = max(0, int(y - r - 2)), min(h, int(y + r + 3))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dist = np.hypot(xx + 0.5 - x, yy + 0.5 - y)  # pixel (i, j) covers [j, j + 1) x [i, i + 1)
    alpha = np.clip(r + 0.5 - dist, 0.0, 1.0)[..., None].astype(np.float32)
    patch = img[y0:y1, x0:x1]
    patch += alpha * (colour.astype(np.float32) - patch)


def red_cell_field(
    width: int,
    height: int,
    *,
    mpp: float,
    rbc_um: float = 7.5,
    rbc_sd_um: float = 0.45,
    n_rbc: int = 200,
    n_wbc: int = 3,
    n_platelets: int = 15,
    touching: float = 0.25,
    seed: int = 0,
) -> NDArray[np.uint8]:
    """An RGB uint8 field whose red cells have a median diameter of ``rbc_um`` at ``mpp`` um/px.

    Red cells are placed without overlap except a share ``touching`` that is put against a cell
    already drawn (touching or overlapping it), as in thicker parts of a smear.
    """
    rng = np.random.default_rng(seed)
    um = 1.0 / mpp
    img = np.empty((height, width, 3), np.float32)
    img[:] = BACKGROUND * rng.normal(1.0, 0.02, 3)
    wbcs = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(n_wbc)]
    placed: list[tuple[float, float, float]] = []
    cell = (rbc_um + 4 * rbc_sd_um) * um  # grid of bins for the overlap test: a bin holds a diameter
    bins: dict[tuple[int, int], list[tuple[float, float, float]]] = {}

    def near(x: float, y: float) -> list[tuple[float, float, float]]:
        i, j = int(x // cell), int(y // cell)
        return [c for di in (-1, 0, 1) for dj in (-1, 0, 1) for c in bins.get((i + di, j + dj), [])]

    for _ in range(n_rbc * 20):
        if len(placed) >= n_rbc:
            break
        r = rng.normal(rbc_um, rbc_sd_um) / 2 * um
        if placed and rng.random() < touching:  # against a drawn cell, 0.8-1.0 radii apart
            px, py, pr = placed[int(rng.integers(len(placed)))]
            a, gap = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.0) * (pr + r)
            x, y = px + gap * np.cos(a), py + gap * np.sin(a)
        else:
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            if any((x - px) ** 2 + (y - py) ** 2 < (pr + r + 2) ** 2 for px, py, pr in near(x, y)):
                continue
        if any((x - wx) ** 2 + (y - wy) ** 2 < (r + 7 * um) ** 2 for wx, wy in wbcs):
            continue
        placed.append((x, y, r))
        bins.setdefault((int(x // cell), int(y // cell)), []).append((x, y, r))
    for x, y, r in placed:
        _disc(img, x, y, r, RBC_RIM * rng.normal(1.0, 0.02))
        _disc(img, x, y, r * 0.45, (RBC_RIM + RBC_CENTRE) / 2)
        _disc(img, x, y, r * 0.3, RBC_CENTRE)
    for wx, wy in wbcs:
        _disc(img, wx, wy, 6.0 * um, CYTOPLASM)
        _disc(img, wx, wy, 4.0 * um, NUCLEUS)
    for _ in range(n_platelets):
        _disc(img, rng.uniform(0, width), rng.uniform(0, height), 1.2 * um, PLATELET)
    img = cv2.GaussianBlur(img, (0, 0), max(0.5, 0.25 * um))  # optics: a quarter micron
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
