"""Generators of smear areas a morphologist would not count in: thick, clumped, empty, blurred.

Cells are drawn by optical density (Beer-Lambert: overlapping cells darken each other), at a given
pixel size, so the images look like the parts of a real smear they stand for. ``real_*`` helpers
build the same areas from real Matek patches (``../shared/data``) and return None when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from _synthetic import BACKGROUND
from _synthetic import compose_real_field
from numpy.typing import NDArray

GLASS = np.array(BACKGROUND, np.float32)
RBC_OD = np.array([0.03, 0.14, 0.13], np.float32)  # pink: absorbs green and blue a little
CYTO_OD = np.array([0.06, 0.07, 0.02], np.float32)
NUCLEUS_OD = np.array([0.42, 0.70, 0.16], np.float32)  # violet
MATEK = Path(__file__).resolve().parents[2] / "shared" / "data" / "matek_bm"


def _add_disc(od: NDArray[np.float32], x: float, y: float, r: float, disc_od: NDArray[np.float32]) -> None:
    h, w = od.shape[:2]
    x0, x1 = max(0, int(x - r) - 1), min(w, int(x + r) + 2)
    y0, y1 = max(0, int(y - r) - 1), min(h, int(y + r) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = np.clip(r + 0.5 - np.hypot(xx - x, yy - y), 0.0, 1.0)[..., None]
    od[y0:y1, x0:x1] += inside * disc_od


def render(od: NDArray[np.float32], *, seed: int = 0, noise: float = 3.0) -> NDArray[np.uint8]:
    """Transmitted light through ``od`` (H x W x 3, per channel) over the glass, with camera noise."""
    rng = np.random.default_rng(seed)
    img = GLASS * np.power(10.0, -od) + rng.normal(0, noise, od.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def smear_area(
    width: int,
    height: int,
    *,
    mpp: float,
    rbc_per_100um2: float,
    wbc_centres: list[tuple[float, float]] = (),  # type: ignore[assignment]
    seed: int = 0,
    noise: float = 3.0,
) -> NDArray[np.uint8]:
    """Red cells at a density (per 100 um2; a monolayer ~0.5, a thick area with no glass between cells ~7) plus white cells."""
    rng = np.random.default_rng(seed)
    od = np.zeros((height, width, 3), np.float32)
    um = 1.0 / mpp
    n_rbc = int(rbc_per_100um2 * width * height * mpp**2 / 100.0)
    for _ in range(n_rbc):
        _add_disc(od, rng.uniform(0, width), rng.uniform(0, height), 3.8 * um, RBC_OD)
    for cx, cy in wbc_centres:
        _add_disc(od, cx, cy, 6.0 * um, CYTO_OD)
        _add_disc(od, cx, cy, 4.0 * um, NUCLEUS_OD)
    return render(od, seed=seed + 1, noise=noise)


def monolayer(width: int, height: int, *, mpp: float, seed: int = 0) -> tuple[NDArray[np.uint8], list]:
    """Red cells with gaps between them and white cells apart from each other (what is counted)."""
    rng = np.random.default_rng(seed)
    um = 1.0 / mpp
    step = 30 * um
    centres = [
        (x + rng.uniform(-5, 5) * um, y + rng.uniform(-5, 5) * um)
        for y in np.arange(step / 2, height - 6 * um, step)
        for x in np.arange(step / 2, width - 6 * um, step)
    ]
    return smear_area(width, height, mpp=mpp, rbc_per_100um2=0.45, wbc_centres=centres, seed=seed), centres


def thick(width: int, height: int, *, mpp: float, seed: int = 0) -> NDArray[np.uint8]:
    """The thick body of a smear: red cells piled on each other, white cells among them."""
    rng = np.random.default_rng(seed)
    um = 1.0 / mpp
    n = int(width * height * mpp**2 / 900.0)
    centres = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(n)]
    del um
    return smear_area(width, height, mpp=mpp, rbc_per_100um2=7.0, wbc_centres=centres, seed=seed)


def clumped(width: int, height: int, *, mpp: float, seed: int = 0) -> tuple[NDArray[np.uint8], list]:
    """Clumps of 20-40 white cells piled within a few microns of each other, few red cells."""
    rng = np.random.default_rng(seed)
    um = 1.0 / mpp
    centres: list[tuple[float, float]] = []
    step = 50 * um
    for y in np.arange(step / 2, height, step):
        for x in np.arange(step / 2, width, step):
            for _ in range(int(rng.integers(20, 41))):
                centres.append((x + rng.normal(0, 8) * um, y + rng.normal(0, 8) * um))
    img = smear_area(width, height, mpp=mpp, rbc_per_100um2=0.3, wbc_centres=centres, seed=seed)
    return img, centres


def empty(width: int, height: int, *, seed: int = 0, noise: float = 3.0) -> NDArray[np.uint8]:
    """Bare glass with camera noise."""
    return render(np.zeros((height, width, 3), np.float32), seed=seed, noise=noise)


def blurred(img: NDArray[np.uint8], *, sigma_um: float, mpp: float, seed: int = 0) -> NDArray[np.uint8]:
    """Out of focus: Gaussian blur of ``sigma_um``, camera noise added after the optics."""
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(img, (0, 0), sigma_um / mpp).astype(np.float32) + rng.normal(0, 3, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def mosaic(tiles: list[list[NDArray[np.uint8]]]) -> NDArray[np.uint8]:
    """Rows of equal-sized images side by side (a slide made of fields)."""
    return np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)


def real_patches(n: int, *, seed: int = 0) -> list[NDArray[np.uint8]] | None:
    """``n`` random real Matek patches (RGB), or None when ``../shared/data`` is absent."""
    files = sorted(MATEK.glob("*/*.jpg"))
    if not files:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
    return [cv2.imread(str(files[i]))[:, :, ::-1].copy() for i in pick]


def real_monolayer(patches: list[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    """A Matek-sized field (2452 x 2056 at 0.0862 um/px) of real patches 300 px apart."""
    return compose_real_field(patches)[0]


def real_clumped(
    patches: list[NDArray[np.uint8]], *, width: int = 2452, height: int = 2056
) -> NDArray[np.uint8]:
    """Real patches piled 80 px (7 um) apart, darkening each other where they overlap."""
    od = np.zeros((height, width, 3), np.float32)
    p = patches[0].shape[0]
    k = 0
    for y in range(0, height - p, 80):
        for x in range(0, width - p, 80):
            patch = patches[k % len(patches)].astype(np.float32)
            od[y : y + p, x : x + p] += np.clip(np.log10((GLASS + 1) / (patch + 1)), 0, None) * 0.5
            k += 1
    return render(od, noise=2.0)
