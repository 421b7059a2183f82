"""cells.geojson: one QuPath detection per cell, in level-0 pixel coordinates.

QuPath (File > Import objects) reads GeoJSON Features whose properties carry
``objectType: "detection"`` and ``classification: {name, color}``; ``measurements`` become the
detection's measurement table. Each cell is drawn as the ellipse inscribed in its detector box.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import shapely

from wsi_screen.io import atomic_write_text
from wsi_screen.reports.selection import class_color
from wsi_screen.reports.selection import final_labels

_N_VERTICES = 24


def _ellipses(frame: pl.DataFrame) -> np.ndarray:
    """Polygons (ellipses in the boxes, centred on the cell) as a shapely array."""
    x = frame["x"].to_numpy().astype(float)
    y = frame["y"].to_numpy().astype(float)
    rx = np.maximum((frame["bbox_x1"] - frame["bbox_x0"]).to_numpy() / 2.0, 1.0)
    ry = np.maximum((frame["bbox_y1"] - frame["bbox_y0"]).to_numpy() / 2.0, 1.0)
    t = np.linspace(0.0, 2.0 * np.pi, _N_VERTICES, endpoint=False)
    xs = x[:, None] + rx[:, None] * np.cos(t)[None, :]
    ys = y[:, None] + ry[:, None] * np.sin(t)[None, :]
    ring = np.stack([xs, ys], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)  # closed rings
    return np.asarray(shapely.polygons(np.round(ring, 2)))


def cells_geodataframe(frame: pl.DataFrame, class_names: list[str]) -> Any:
    """Build the GeoDataFrame of cells (geopandas imported lazily).

    Args:
        frame: cells.parquet content (``reviewed_class`` used when present).
        class_names: the model's classes (one ``prob <CLASS>`` measurement each).

    Returns:
        A ``geopandas.GeoDataFrame`` with one row per cell.
    """
    import geopandas as gpd

    labels = final_labels(frame)
    preds = frame["predicted_class"].to_list()
    conf = frame["confidence"].to_list()
    probs = {c: frame[f"prob_{c}"].to_list() for c in class_names if f"prob_{c}" in frame.columns}
    ids = frame["cell_id"].to_list()
    score = frame["detector_score"].to_list() if "detector_score" in frame.columns else [None] * len(ids)
    rows = []
    for i, cid in enumerate(ids):
        measurements = {"probability": round(float(conf[i]), 4)}
        s = score[i]
        if s is not None:
            measurements["detector score"] = round(float(s), 4)
        for c, col in probs.items():
            measurements[f"prob {c}"] = round(float(col[i]), 4)
        rows.append(
            {
                "objectType": "detection",
                "name": f"cell {cid}",
                "classification": {"name": labels[i], "color": list(class_color(labels[i]))},
                "measurements": measurements,
                "cell_id": int(cid),
                "predicted_class": preds[i],
                "reviewed": labels[i] != preds[i],
                "isLocked": False,
            }
        )
    geometry: Any = _ellipses(frame) if frame.height else []
    return gpd.GeoDataFrame(rows, geometry=list(geometry), crs=None)


def write_cells_geojson(frame: pl.DataFrame, class_names: list[str], path: Path) -> None:
    """Write cells.geojson atomically (pixel coordinates, no CRS)."""
    gdf = cells_geodataframe(frame, class_names)
    if len(gdf) == 0:  # geopandas cannot serialise an empty frame without a geometry column type
        text = '{"type": "FeatureCollection", "features": []}'
    else:
        text = gdf.to_json(drop_id=True, ensure_ascii=False)
    atomic_write_text(path, text)
