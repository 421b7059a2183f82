"""The per-cell table (cells.parquet): one row per detected cell, level-0 pixel coordinates."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from wsi_screen.io import atomic_path
from wsi_screen.types import CellCalls


def cells_frame(
    calls: CellCalls,
    labels: list[str] | None = None,
    *,
    counted: list[bool] | None = None,
    regions: list[int] | None = None,
) -> pl.DataFrame:
    """Build the per-cell table.

    Columns: cell_id, x, y, bbox_x0, bbox_y0, bbox_x1, bbox_y1, detector_score, predicted_class,
    confidence, then ``prob_<CLASS>`` per class; with ``counted`` / ``regions`` given, also
    ``counted`` (whether the cell feeds the differential: its region is counted) and ``region``
    (the id of its region in report.json's ``regions``); with a domain reference in the model,
    ``novelty`` (the cell's feature distance to the nearest training class: higher is less
    familiar) and ``unfamiliar`` (novelty above the model's fitted cell threshold).
    """
    cells = calls.cells
    labels = labels if labels is not None else calls.labels
    data: dict[str, object] = {
        "cell_id": pl.Series([c.cell_id for c in cells], dtype=pl.Int64),
        "x": pl.Series([c.x for c in cells], dtype=pl.Float64),
        "y": pl.Series([c.y for c in cells], dtype=pl.Float64),
        "bbox_x0": pl.Series([c.bbox[0] for c in cells], dtype=pl.Int64),
        "bbox_y0": pl.Series([c.bbox[1] for c in cells], dtype=pl.Int64),
        "bbox_x1": pl.Series([c.bbox[2] for c in cells], dtype=pl.Int64),
        "bbox_y1": pl.Series([c.bbox[3] for c in cells], dtype=pl.Int64),
        "detector_score": pl.Series([c.score for c in cells], dtype=pl.Float64),
        "predicted_class": pl.Series(labels, dtype=pl.Utf8),
        "confidence": pl.Series(calls.confidence.tolist(), dtype=pl.Float32),
    }
    for j, name in enumerate(calls.class_names):
        data[f"prob_{name}"] = pl.Series(calls.probs[:, j].tolist() if len(cells) else [], dtype=pl.Float32)
    novelty, unfamiliar = calls.novelty, calls.unfamiliar
    if novelty is not None:
        data["novelty"] = pl.Series(novelty.tolist(), dtype=pl.Float32)
    if unfamiliar is not None:
        data["unfamiliar"] = pl.Series(unfamiliar.tolist(), dtype=pl.Boolean)
    if counted is not None:
        data["counted"] = pl.Series(counted, dtype=pl.Boolean)
    if regions is not None:
        data["region"] = pl.Series(regions, dtype=pl.Int64)
    return pl.DataFrame(data)


def write_cells_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write the table atomically."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)
