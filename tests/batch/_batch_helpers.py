"""Helpers shared by the batch tests."""

from __future__ import annotations

import csv
from pathlib import Path

GOOD = ("a_field.png", "b_field.jpg", "c_field.tif")
BAD = {
    "d_truncated.png": "read",
    "e_truncated.jpg": "read",
    "f_text.tif": "read",
    "g_empty.png": "read",
}
SIDECARS = ("h_notes.txt",)  # not an image: listed as skipped, never screened or failed
N_GOOD = 6


def read_summary(out: Path, *, timings: bool = False) -> list[dict[str, str]]:
    """summary.csv rows; timing columns dropped unless asked for (they differ run to run)."""
    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if timings or not k.startswith("time_")} for r in rows]


def temp_files(out: Path) -> list[Path]:
    """Temp files of atomic writes left anywhere under ``out``."""
    return [p for p in out.rglob(".*.tmp")]
