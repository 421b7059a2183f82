from __future__ import annotations

import itertools

import numpy as np

from wsi_screen.classes import MATEK_CLASSES
from wsi_screen.reports.palette import MATEK_STYLES
from wsi_screen.reports.palette import SHAPE_PATHS
from wsi_screen.reports.palette import class_styles

# Machado, Oliveira & Fernandes 2009, severity 1.0, applied to linear RGB
CVD = {
    "protanopia": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
    ),
    "deuteranopia": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
    ),
    "tritanopia": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]
    ),
}


def _lab(rgb: tuple[int, int, int], matrix: np.ndarray | None) -> np.ndarray:
    c = np.array(rgb) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if matrix is not None:
        lin = np.clip(matrix @ lin, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_matek_class_has_its_own_colour_and_shape():
    assert set(MATEK_STYLES) == set(MATEK_CLASSES)
    pairs = [(s.color, s.shape) for s in MATEK_STYLES.values()]
    assert len(set(pairs)) == 21
    assert {s.shape for s in MATEK_STYLES.values()} <= set(SHAPE_PATHS)


def test_classes_drawn_with_the_same_shape_stay_apart_for_colour_blind_readers():
    by_shape: dict[str, list[str]] = {}
    for code, s in MATEK_STYLES.items():
        by_shape.setdefault(s.shape, []).append(code)
    worst = 1e9
    for codes in by_shape.values():
        for a, b in itertools.combinations(codes, 2):
            for m in (None, *CVD.values()):
                d = float(np.linalg.norm(_lab(MATEK_STYLES[a].rgb, m) - _lab(MATEK_STYLES[b].rgb, m)))
                worst = min(worst, d)
    assert worst > 10, worst  # CIELAB distance: 10 is clearly visible side by side


def test_other_schemes_get_distinct_unused_pairs():
    styles = class_styles(["BLA", "lymphoid", "myeloid", "erythroid", "other", "BLA"])
    assert list(styles) == ["BLA", "lymphoid", "myeloid", "erythroid", "other"]
    pairs = {(s.color, s.shape) for s in styles.values()}
    assert len(pairs) == 5
    matek_pairs = {(s.color, s.shape) for s in MATEK_STYLES.values()}
    assert not ({(styles[c].color, styles[c].shape) for c in styles if c != "BLA"} & matek_pairs)
    # the same scheme looks the same whatever the order its classes come in
    again = class_styles(["other", "erythroid", "myeloid", "lymphoid", "BLA"])
    assert again == {k: styles[k] for k in again}


def test_text_on_swatches_is_readable():
    for s in MATEK_STYLES.values():
        assert s.text_color in ("#000000", "#ffffff")
    assert MATEK_STYLES["OTH"].text_color == "#ffffff"
    assert MATEK_STYLES["NGS"].text_color == "#000000"  # orange: black text reads better
