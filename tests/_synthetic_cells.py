"""Synthetic single-cell patches for the calibration and domain-gate tests.

A pale background with pink red cells and one violet-nucleated white cell in the centre; the
class sets the nucleus (small round, large round, three lobes). Each patch gets its own small
stain and exposure variation, so a group of patches varies as real patches of one lab do.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from _synthetic import BACKGROUND
from _synthetic import CYTOPLASM
from _synthetic import NUCLEUS
from _synthetic import RBC
from numpy.typing import NDArray

CLASSES = ("SML", "BIG", "LOB")


def _disc(img: NDArray[np.uint8], x: float, y: float, r: float, colour: NDArray[np.float64]) -> None:
    c = tuple(int(v) for v in np.clip(colour, 0, 255))
    cv2.circle(img, (round(x * 16), round(y * 16)), max(1, round(r * 16)), c, -1, cv2.LINE_AA, shift=4)


def synthetic_cells(n: int, *, size: int = 64, seed: int = 0) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """``n`` patches (N x size x size x 3 uint8) and their class indices (cycling over CLASSES)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    c = size / 2
    for i in range(n):
        tint = rng.normal(1.0, 0.03, 3)  # this patch's stain / white balance
        img = np.empty((size, size, 3), np.uint8)
        img[:] = np.clip(np.array(BACKGROUND) * tint, 0, 255).astype(np.uint8)
        for _ in range(int(rng.integers(2, 5))):
            a = rng.uniform(0, 2 * np.pi)
            _disc(
                img, c + 0.4 * size * np.cos(a), c + 0.4 * size * np.sin(a), 0.15 * size, np.array(RBC) * tint
            )
        r = size * rng.uniform(0.26, 0.32)
        _disc(img, c, c, r, np.array(CYTOPLASM) * tint)
        nuc = np.array(NUCLEUS) * tint * rng.uniform(0.9, 1.1)
        if labels[i] == 2:
            for a in (0.0, 2.1, 4.2):
                _disc(img, c + 0.35 * r * np.cos(a), c + 0.35 * r * np.sin(a), 0.32 * r, nuc)
        else:
            _disc(img, c, c, r * (0.45 if labels[i] == 0 else 0.75), nuc)
        noisy = img + rng.normal(0, 3, img.shape)
        out[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out, labels


def write_cell_folder(root: Path, n_per_class: int, *, size: int = 64, seed: int = 0) -> list[str]:
    """Write a class-folder data set (``CODE/CODE_00001.png``); return the relative paths in order."""
    patches, labels = synthetic_cells(n_per_class * len(CLASSES), size=size, seed=seed)
    rel = []
    for i, (p, y) in enumerate(zip(patches, labels, strict=True)):
        path = Path(CLASSES[y]) / f"{CLASSES[y]}_{i:05d}.png"
        (root / path.parent).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), p[:, :, ::-1])
        rel.append(str(path))
    return rel
