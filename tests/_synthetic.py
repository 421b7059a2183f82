"""Generators of synthetic test data: smear-like fields with known cell centres, pyramidal TIFFs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from wsi_screen.training.compose import compose_real_field  # noqa: F401 - re-exported for the tests

BACKGROUND = (236, 230, 236)
RBC = (222, 168, 176)
CYTOPLASM = (206, 196, 226)
NUCLEUS = (92, 44, 164)


def _disc(img: NDArray[np.uint8], x: float, y: float, r: float, colour: tuple[int, int, int]) -> None:
    cv2.circle(img, (round(x * 16), round(y * 16)), max(1, round(r * 16)), colour, -1, cv2.LINE_AA, shift=4)


def synthetic_field(
    width: int,
    height: int,
    centres: list[tuple[float, float]],
    *,
    mpp: float = 0.0862,
    n_rbc: int = 40,
    seed: int = 0,
    lobed: list[bool] | None = None,
) -> NDArray[np.uint8]:
    """A pale field with pink red cells and violet-nucleated white cells at ``centres`` (x, y).

    White cells are 12 um across with an 8 um nucleus; ``lobed`` cells get a 3-lobed nucleus
    (a segmented neutrophil) that the detector must count once.
    """
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    um = 1.0 / mpp
    for _ in range(n_rbc):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if all((x - cx) ** 2 + (y - cy) ** 2 > (12 * um) ** 2 for cx, cy in centres):
            _disc(img, x, y, 3.8 * um, RBC)
    for i, (cx, cy) in enumerate(centres):
        _disc(img, cx, cy, 6.0 * um, CYTOPLASM)
        if lobed and lobed[i]:
            for a in (0.0, 2.1, 4.2):
                _disc(img, cx + 2.2 * um * np.cos(a), cy + 2.2 * um * np.sin(a), 1.9 * um, NUCLEUS)
            _disc(img, cx, cy, 0.9 * um, NUCLEUS)  # thin chromatin bridges join the lobes
        else:
            _disc(img, cx, cy, 4.0 * um, NUCLEUS)
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def grid_centres(width: int, height: int, spacing: float, margin: float = 0.0) -> list[tuple[float, float]]:
    """Cell centres on a regular grid, optionally reaching into the margins."""
    xs = np.arange(margin, width - margin, spacing) + spacing / 2
    ys = np.arange(margin, height - margin, spacing) + spacing / 2
    return [(float(x), float(y)) for y in ys for x in xs if x < width and y < height]


def write_pyramidal_tiff(
    path: Path,
    rgb: NDArray[np.uint8],
    *,
    mpp: float | None,
    levels: int = 3,
    tile: int = 256,
    compression: str = "zlib",
) -> Path:
    """Write a tiled pyramidal TIFF (SubIFDs, downsample 2 per level) with the pixel size in the
    resolution tags (centimetres), as scanners' generic TIFFs do."""
    import tifffile

    kwargs: dict[str, object] = {}
    if mpp is not None:
        px_per_cm = 1e4 / mpp
        kwargs = {"resolution": (px_per_cm, px_per_cm), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        tif.write(
            rgb, tile=(tile, tile), subifds=levels - 1, photometric="rgb", compression=compression, **kwargs
        )
        level = rgb
        for _ in range(levels - 1):
            level = cv2.resize(
                level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA
            )
            sub_kwargs = {}
            if mpp is not None:
                f = rgb.shape[1] / level.shape[1]
                sub_kwargs = {"resolution": (1e4 / (mpp * f),) * 2, "resolutionunit": "CENTIMETER"}
            tif.write(
                level,
                tile=(tile, tile),
                subfiletype=1,
                photometric="rgb",
                compression=compression,
                **sub_kwargs,
            )
    return path


def field_crops(n: int, side: int) -> NDArray[np.uint8]:
    """``n`` cell-centred ``side`` px crops of a synthetic field (stain, background, nuclei), not noise."""
    field = synthetic_field(1200, 1000, grid_centres(1200, 1000, 240), seed=3)
    out = []
    for cx, cy in grid_centres(1200, 1000, 240)[:n]:
        x, y = int(cx) - side // 2, int(cy) - side // 2
        crop = np.full((side, side, 3), 235, np.uint8)
        part = field[max(0, y) : y + side, max(0, x) : x + side]
        crop[: part.shape[0], : part.shape[1]] = part
        out.append(crop)
    return np.stack(out)
