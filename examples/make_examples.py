"""Make the SYNTHETIC example inputs used by the README quick start.

These are drawn, not scanned: pale background, pink discs for red cells and violet-nucleated
discs for white cells. They exercise every stage of the pipeline (reading, tiling, detection,
patching, classification, reports) but their cells are cartoons: the classifier's calls on them
mean nothing. For real data, see the README ("Real data").

Usage:
    python examples/make_examples.py            # writes examples/data/*
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from _synthetic import grid_centres  # noqa: E402
from _synthetic import synthetic_field  # noqa: E402
from _synthetic import write_pyramidal_tiff  # noqa: E402


def jittered(width: int, height: int, spacing: float, seed: int) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    pts = grid_centres(width, height, spacing)
    return [(x + rng.uniform(-0.2, 0.2) * spacing, y + rng.uniform(-0.2, 0.2) * spacing) for x, y in pts]


def main() -> None:
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    # A field at the Matek reference size and scale (2452 x 2056 px, 0.0862 um/px; no mpp in the file).
    centres = jittered(2452, 2056, 330, seed=1)
    field = synthetic_field(
        2452, 2056, centres, lobed=[i % 3 == 0 for i in range(len(centres))], n_rbc=120, seed=1
    )
    cv2.imwrite(str(out / "synthetic_field.jpg"), field[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    # A small pyramidal slide scanned at 0.25 um/px (pixel size recorded in the TIFF).
    mpp = 0.25
    centres = jittered(3200, 2400, 120, seed=2)
    slide = synthetic_field(
        3200, 2400, centres, mpp=mpp, lobed=[i % 4 == 0 for i in range(len(centres))], n_rbc=550, seed=2
    )
    write_pyramidal_tiff(out / "synthetic_slide.tiff", slide, mpp=mpp, levels=3, compression="jpeg")
    for p in sorted(out.iterdir()):
        print(f"{p.relative_to(HERE.parent)}: {p.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
