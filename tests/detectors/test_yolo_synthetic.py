"""Generated YOLO data sets of smear-like fields (violet-nucleated discs on a pale background).

Shared by the YOLO, training-CLI and evaluation tests; the test below checks the labels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from _synthetic import synthetic_field

from wsi_screen.training.detector_convert import YoloLabel
from wsi_screen.training.detector_convert import read_yolo_labels
from wsi_screen.training.detector_convert import write_yolo_labels

DISC_MPP = 0.4
"""Microns per pixel of generated fields: a 12 um white cell is 30 px across."""
CELL_UM = 12.0


def random_centres(
    rng: np.random.Generator, w: int, h: int, n: int, min_dist: float
) -> list[tuple[float, float]]:
    """Up to ``n`` centres at least ``min_dist`` apart and a little inside the image."""
    out: list[tuple[float, float]] = []
    for _ in range(200):
        if len(out) == n:
            break
        x, y = rng.uniform(16, w - 16), rng.uniform(16, h - 16)
        if all(np.hypot(x - a, y - b) >= min_dist for a, b in out):
            out.append((float(x), float(y)))
    return out


def write_disc_dataset(
    root: Path,
    *,
    n_train: int = 12,
    n_val: int = 4,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    rbc_class: bool = False,
) -> Path:
    """Write ``images/{train,val}`` + ``labels/{train,val}`` + ``data.yaml``; return ``root``.

    Class 0 is the white cell (box of the 12 um cell); with ``rbc_class`` a second class 1 labels
    a few pale distractor boxes, so class selection can be tested.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    side = CELL_UM / DISC_MPP
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            centres = random_centres(rng, w, h, int(rng.integers(1, 4)), 1.3 * side)
            img = synthetic_field(w, h, centres, mpp=DISC_MPP, n_rbc=3, seed=seed * 1000 + i)
            cv2.imwrite(str(root / "images" / split / f"{split}_{i:03d}.png"), img[:, :, ::-1])
            labels = [YoloLabel(0, cx / w, cy / h, side / w, side / h) for cx, cy in centres]
            if rbc_class:
                labels.append(YoloLabel(1, 0.1, 0.1, 0.05, 0.05))
            write_yolo_labels(root / "labels" / split / f"{split}_{i:03d}.txt", labels)
    names = "['cell', 'rbc']" if rbc_class else "['cell']"
    (root / "data.yaml").write_text(
        f"train: images/train\nval: images/val\nnames: {names}\n", encoding="utf-8"
    )
    return root


def test_generated_labels_sit_on_the_discs(tmp_path: Path) -> None:
    root = write_disc_dataset(tmp_path, n_train=2, n_val=1)
    img = cv2.imread(str(root / "images" / "train" / "train_000.png"))[:, :, ::-1]
    labels = read_yolo_labels(root / "labels" / "train" / "train_000.txt")
    assert labels
    for lab in labels:
        x, y = round(lab.cx * img.shape[1]), round(lab.cy * img.shape[0])
        r, g, b = (int(v) for v in img[y, x])
        assert b - g > 60  # violet nucleus at the labelled centre
