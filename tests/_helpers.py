"""Helpers shared by tests (imported as ``from _helpers import ...``).

They live here rather than in conftest.py: pytest imports every conftest.py under the module
name ``conftest``, so ``from conftest import`` would pick whichever was loaded last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def require_shared_data(*parts: str) -> Path:
    """Return ../shared/data/<parts> or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: real-data test skipped (needs ../shared/data beside the repo)")
    return path


def match_centres(
    found: list[tuple[float, float]], truth: list[tuple[float, float]], radius: float
) -> tuple[int, int, int]:
    """Return (matched truth cells, truth cells found more than once, unmatched detections)."""
    f = np.asarray(found, dtype=float).reshape(-1, 2)
    hits = multi = 0
    used = np.zeros(len(f), bool)
    for cx, cy in truth:
        d = np.hypot(f[:, 0] - cx, f[:, 1] - cy) if len(f) else np.zeros(0)
        k = d < radius
        hits += bool(k.any())
        multi += int(k.sum()) > 1
        used |= k
    return hits, multi, int((~used).sum())
