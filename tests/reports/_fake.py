"""Fake screened inputs for report tests and benchmarks: procedural images, chosen calls, no model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsi_screen.classes import MATEK_CLASSES
from wsi_screen.config import ScreenConfig
from wsi_screen.reports.assets import ReportOptions
from wsi_screen.reports.writer import write_input_reports
from wsi_screen.sources import ResolvedMpp
from wsi_screen.stages import ScreenedInput
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls

CLASSES = tuple(MATEK_CLASSES)
BACKGROUND = (238, 226, 230)
# rough marrow differential used to draw labels
MIX = {"NGS": 0.2, "NGB": 0.08, "MMZ": 0.05, "MYB": 0.07, "PMO": 0.07, "BLA": 0.09, "EBO": 0.15,
       "PEB": 0.02, "LYT": 0.1, "PLM": 0.02, "MON": 0.03, "EOS": 0.03, "HAC": 0.01, "ART": 0.05,
       "NIF": 0.02, "BAS": 0.01}  # fmt: skip


class ProceduralSource:
    """An ImageSource whose pixels are drawn on demand (violet discs on a pale background)."""

    def __init__(
        self, width: int, height: int, centres: np.ndarray, *, mpp: float = 0.0862, radius: float = 60
    ) -> None:
        self.width, self.height, self.centres, self.mpp, self.radius = width, height, centres, mpp, radius
        self.source_id = "procedural"

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return (1.0, 4.0) if max(self.width, self.height) > 8000 else (1.0,)

    def _draw(self, x0: float, y0: float, w: int, h: int, scale: float) -> np.ndarray:
        img = np.empty((h, w, 3), np.uint8)
        img[:] = BACKGROUND
        r = self.radius * scale
        near = (
            (self.centres[:, 0] * scale > x0 - 2 * r) & (self.centres[:, 0] * scale < x0 + w + 2 * r)
            & (self.centres[:, 1] * scale > y0 - 2 * r) & (self.centres[:, 1] * scale < y0 + h + 2 * r)
        )  # fmt: skip
        for k in np.flatnonzero(near):
            cx, cy = self.centres[k] * scale - (x0, y0)
            cv2.circle(img, (round(cx), round(cy)), max(1, round(r * 1.3)), (205, 190, 225), -1)
            cv2.circle(
                img, (round(cx), round(cy)), max(1, round(r * (0.6 + 0.3 * (k % 3) / 2))), (95, 45, 150), -1
            )
        return img

    def read_region(self, x: int, y: int, width: int, height: int, *, level: int = 0) -> np.ndarray:
        return self._draw(x, y, width, height, 1.0)

    def thumbnail(self, max_side: int) -> np.ndarray:
        s = max_side / max(self.width, self.height)
        return self._draw(0, 0, max(1, round(self.width * s)), max(1, round(self.height * s)), s)

    def close(self) -> None:
        return None


def fake_calls(
    n: int, width: int, height: int, *, seed: int = 0, classes: tuple[str, ...] = CLASSES
) -> tuple[CellCalls, np.ndarray]:
    """``n`` cells at random positions with plausible probabilities (some near the blast boundary)."""
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(80, width - 80, n), rng.uniform(80, height - 80, n)])
    names = [c for c in MIX if c in classes]
    p = np.array([MIX[c] for c in names])
    true = rng.choice(len(names), size=n, p=p / p.sum())
    logits = rng.normal(0, 1, (n, len(classes)))
    for i, t in enumerate(true):
        logits[i, classes.index(names[t])] += rng.uniform(1.5, 6.0)
        if names[t] in ("BLA", "PMO", "MON") and "BLA" in classes and i % 3 == 0:
            logits[i, classes.index("BLA")] += 2.0  # ambiguous blasts for the review queue
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    cells = tuple(
        Cell(
            i,
            "procedural",
            float(x),
            float(y),
            (int(x) - 60, int(y) - 60, int(x) + 60, int(y) + 60),
            0.9,
            "fake",
        )
        for i, (x, y) in enumerate(centres)
    )
    return CellCalls(cells, probs, classes, "fake"), centres


def write_fake_report(
    out_dir: Path,
    input_path: Path,
    *,
    n_cells: int = 120,
    size: tuple[int, int] = (2452, 2056),
    seed: int = 0,
    calls: CellCalls | None = None,
    cfg: ScreenConfig | None = None,
    options: ReportOptions | None = None,
) -> dict[str, Any]:
    """Write OUT/<stem>/ for a fake input; ``input_path`` must exist (its sha256 is recorded)."""
    w, h = size
    if calls is None:
        calls, centres = fake_calls(n_cells, w, h, seed=seed)
    else:
        centres = np.array([[c.x, c.y] for c in calls.cells]).reshape(-1, 2)
    item = ScreenedInput(path=input_path, stem=input_path.stem, source=ProceduralSource(w, h, centres))
    item.mpp = ResolvedMpp(0.0862, "file")
    for stage, sec in (("read", 0.1), ("detect", 1.2), ("patch", 0.4), ("classify", 2.5)):
        item.timer.add(stage, sec)
    model_info = {"name": "fake-model", "sha256": "0" * 64, "classes": list(calls.class_names),
                  "architecture": "none", "mpp": 0.0862, "patch_size_px": 250}  # fmt: skip
    return write_input_reports(
        item,
        out_dir,
        cfg=cfg or ScreenConfig(),
        model_info=model_info,
        detector_info={"name": "fake", "params": {}},
        calls=calls,
        options=options,
    )
