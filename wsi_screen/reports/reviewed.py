"""The reviewed cells table: reclassified, removed and added cells applied to cells.parquet's rows.

The model's rows stay as they were (``predicted_class``, ``confidence``, ``prob_*``); a review
adds its own columns:

- ``reviewed_class``: the reviewer's class (any class of the review scheme), null where the
  reviewer kept the model's;
- ``removed``: ``duplicate`` or ``not_a_cell`` where the reviewer removed the detection (it then
  counts nowhere: not in the detections, the differential or the histogram), else null;
- ``origin``: ``model`` (a detection) or ``reviewer`` (a cell the reviewer added; its
  ``predicted_class`` is null and its probabilities are 0);
- ``review_comment``: the reviewer's note on the cell;
- ``added_id``: the id the page gave a cell the reviewer added (null for detections).

Rows are never deleted, so cell ids are never reused: an added cell gets the next id after the
largest in the table, and removing it marks it removed like any other. The figures are computed
from the rows not removed, each with its final class (:func:`review_inputs`).

A corrections file states the end state of each cell it names, so applying it twice is applying it
once: an added cell whose ``added_id`` (or, for a file without ids, whose position within
:data:`SAME_CELL_PX`) is already a reviewer's row sets that row's class and comment instead of
adding another.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from wsi_screen.reports.rules import figure_classes
from wsi_screen.reports.selection import prob_matrix

ORIGIN_MODEL, ORIGIN_REVIEWER = "model", "reviewer"
REMOVAL_REASONS = ("duplicate", "not_a_cell")
REVIEW_COLUMNS = ("reviewed_class", "removed", "origin", "review_comment", "added_id")
SAME_CELL_PX = 1.0
"""An added cell without an id within this many pixels of a reviewer's row (x and y) is that row."""


@dataclass(frozen=True)
class AddedCell:
    """A cell the detector missed, placed by the reviewer (level-0 pixels) with its class."""

    x: float
    y: float
    cls: str
    comment: str | None = None
    add_id: str | None = None
    """The stable id the page assigned (``added_id`` in cells.parquet); None in hand-made files."""


@dataclass(frozen=True)
class CellEdits:
    """Validated edits of one corrections file, by cell id.

    Attributes:
        classes: cell id -> class (a correction back to the model's class undoes an earlier one;
            reclassifying a removed cell restores it).
        removed: cell id -> removal reason.
        added: new cells.
        comments: cell id -> the reviewer's note.
    """

    classes: dict[int, str] = field(default_factory=dict)
    removed: dict[int, str] = field(default_factory=dict)
    added: tuple[AddedCell, ...] = ()
    comments: dict[int, str] = field(default_factory=dict)


def with_review_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the review columns present (a screened table gets them empty)."""
    cols = []
    for name in REVIEW_COLUMNS:
        if name not in frame.columns:
            value = ORIGIN_MODEL if name == "origin" else None
            cols.append(pl.lit(value, dtype=pl.Utf8).alias(name))
    return frame.with_columns(cols) if cols else frame


def counted_rows(frame: pl.DataFrame) -> pl.Series:
    """Rows that feed the figures: all, unless the table has a ``counted`` column (a slide's regions)."""
    if "counted" not in frame.columns:
        return pl.Series("counted", [True] * frame.height, dtype=pl.Boolean)
    return frame["counted"].fill_null(True)


def final_classes(frame: pl.DataFrame) -> list[str | None]:
    """Each row's class after review (reviewed, else predicted), None for removed rows."""
    frame = with_review_columns(frame)
    final = frame.select(pl.coalesce("reviewed_class", "predicted_class")).to_series().to_list()
    return [None if r is not None else c for c, r in zip(final, frame["removed"].to_list(), strict=True)]


def apply_edits(frame: pl.DataFrame, edits: CellEdits) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Apply ``edits`` to the table (earlier reviews' columns kept and merged).

    Returns:
        The new table and the changes it makes against the table given, one record per cell that
        changed (``cell_id``, ``kind``, ``from``, ``to``, ``comment``), for the audit trail.
    """
    frame = with_review_columns(frame)
    before = dict(zip(frame["cell_id"].to_list(), final_classes(frame), strict=True))
    ids = frame["cell_id"].to_list()
    preds = frame["predicted_class"].to_list()
    reviewed = frame["reviewed_class"].to_list()
    removed = frame["removed"].to_list()
    comments = frame["review_comment"].to_list()
    for i, cid in enumerate(ids):
        if cid in edits.classes:
            code = edits.classes[cid]
            reviewed[i] = None if code == preds[i] else code
            removed[i] = None
        if cid in edits.removed:
            removed[i] = edits.removed[cid]
        if cid in edits.comments:
            comments[i] = edits.comments[cid] or None
    fresh: list[AddedCell] = []
    known = _AddedRows(frame)
    for cell in edits.added:  # the end state of an added cell: a row it names already is set, not added again
        row = known.row_of(cell)
        if row is None:
            fresh.append(cell)
            continue
        reviewed[row], removed[row] = cell.cls, None
        if cell.comment is not None:
            comments[row] = cell.comment or None
    frame = frame.with_columns(
        pl.Series("reviewed_class", reviewed, dtype=pl.Utf8),
        pl.Series("removed", removed, dtype=pl.Utf8),
        pl.Series("review_comment", comments, dtype=pl.Utf8),
    )
    if fresh:
        frame = pl.concat([frame, _added_rows(frame, _one_per_cell(fresh))], how="vertical_relaxed")
    after = dict(zip(frame["cell_id"].to_list(), final_classes(frame), strict=True))
    notes = dict(zip(frame["cell_id"].to_list(), frame["review_comment"].to_list(), strict=True))
    reasons = dict(zip(frame["cell_id"].to_list(), frame["removed"].to_list(), strict=True))
    changes = []
    for cid, now in after.items():
        was = before.get(cid)
        if cid not in before:
            kind = "added"
        elif now is None and was is not None:
            kind = f"removed_{reasons[cid]}"
        elif was is None and now is not None:
            kind = "restored"
        elif was != now:
            kind = "reclassified"
        elif cid in edits.comments:
            kind = "commented"
        else:
            continue
        changes.append({"cell_id": int(cid), "kind": kind, "from": was, "to": now, "comment": notes.get(cid)})
    return frame, changes


class _AddedRows:
    """The reviewer's rows of a table, found by ``added_id`` or (files without ids) by position."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.by_id: dict[str, int] = {}
        self.by_cell: dict[tuple[int, int], list[int]] = {}
        self.xs, self.ys = frame["x"].to_list(), frame["y"].to_list()
        rows = zip(frame["origin"].to_list(), frame["added_id"].to_list(), strict=True)
        for i, (origin, aid) in enumerate(rows):
            if origin != ORIGIN_REVIEWER:
                continue
            if aid is not None:
                self.by_id.setdefault(aid, i)
            self.by_cell.setdefault((int(self.xs[i]), int(self.ys[i])), []).append(i)

    def row_of(self, cell: AddedCell) -> int | None:
        """The row ``cell`` is already; None when it is new."""
        if cell.add_id is not None:
            return self.by_id.get(cell.add_id)
        gx, gy = int(cell.x), int(cell.y)
        near = (i for dx in (-1, 0, 1) for dy in (-1, 0, 1) for i in self.by_cell.get((gx + dx, gy + dy), []))
        return next((i for i in sorted(near) if _same_place(cell, self.xs[i], self.ys[i])), None)


def _same_place(cell: AddedCell, x: float, y: float) -> bool:
    return abs(cell.x - float(x)) <= SAME_CELL_PX and abs(cell.y - float(y)) <= SAME_CELL_PX


def _one_per_cell(cells: list[AddedCell]) -> tuple[AddedCell, ...]:
    """New cells, one per ``add_id`` (or per position for cells without one): the later item wins."""
    kept: dict[object, AddedCell] = {}
    for cell in cells:
        key: object = cell.add_id if cell.add_id is not None else (round(cell.x), round(cell.y))
        kept[key] = cell
    return tuple(kept.values())


def _added_rows(frame: pl.DataFrame, added: tuple[AddedCell, ...]) -> pl.DataFrame:
    """Rows for reviewer-added cells: the next ids, a box of the median detection size, zero probabilities."""
    ids = frame["cell_id"].to_numpy()
    start = int(ids.max()) + 1 if len(ids) else 0
    half_w = (
        float(np.median(frame["bbox_x1"].to_numpy() - frame["bbox_x0"].to_numpy())) / 2 if len(ids) else 0.0
    )
    half_h = (
        float(np.median(frame["bbox_y1"].to_numpy() - frame["bbox_y0"].to_numpy())) / 2 if len(ids) else 0.0
    )
    rows: dict[str, list[Any]] = {c: [] for c in frame.columns}
    for k, cell in enumerate(added):
        values: dict[str, Any] = {
            "cell_id": start + k,
            "x": float(cell.x),
            "y": float(cell.y),
            "bbox_x0": round(cell.x - half_w),
            "bbox_y0": round(cell.y - half_h),
            "bbox_x1": round(cell.x + half_w),
            "bbox_y1": round(cell.y + half_h),
            "predicted_class": None,
            "confidence": 0.0,
            "reviewed_class": cell.cls,
            "removed": None,
            "origin": ORIGIN_REVIEWER,
            "review_comment": cell.comment,
            "added_id": cell.add_id,
            "counted": True,  # the reviewer counted it
        }
        for col in frame.columns:
            rows[col].append(values.get(col, 0.0 if col.startswith("prob_") else None))
    return pl.DataFrame(rows, schema=frame.schema)


def review_inputs(
    frame: pl.DataFrame, model_classes: list[str], scheme: list[str] | None
) -> tuple[list[str], NDArray[np.float32], tuple[str, ...]]:
    """What :func:`wsi_screen.aggregate.summarize` needs for the reviewed figures.

    Returns:
        Final labels of the rows not removed, their probabilities over the figure classes (a
        reviewed row one-hot at its class, a model row the model's), and the figure classes (the
        model's, then the review classes in use).
    """
    frame = with_review_columns(frame)
    rows = frame.filter(frame["removed"].is_null() & counted_rows(frame))
    labels = [c for c in final_classes(rows) if c is not None]
    names = figure_classes(model_classes, scheme, labels)
    probs = np.zeros((rows.height, len(names)), dtype=np.float32)
    probs[:, : len(model_classes)] = prob_matrix(rows, list(model_classes))
    idx = {c: j for j, c in enumerate(names)}
    for i, code in enumerate(rows["reviewed_class"].to_list()):
        if code is not None:
            probs[i] = 0.0
            probs[i, idx[code]] = 1.0
    return labels, probs, names


def model_confidence(frame: pl.DataFrame, model_classes: list[str]) -> NDArray[np.float32]:
    """The model's maximum probability of each of its detections, removed ones too.

    QC describes the model's calls as screened: a review changes the figures, not how confident
    the model was.
    """
    frame = with_review_columns(frame)
    rows = frame.filter((frame["origin"] == ORIGIN_MODEL) & counted_rows(frame))
    probs = prob_matrix(rows, list(model_classes))
    return probs.max(axis=1) if len(probs) else np.zeros(0, np.float32)


def review_records(frame: pl.DataFrame) -> dict[str, Any]:
    """``n_corrections`` and ``corrections`` of report.json's review block.

    One record per cell the review changed against the model (``kind`` reclassified, added or removed).
    """
    frame = with_review_columns(frame)
    records: list[dict[str, Any]] = []
    for row in frame.iter_rows(named=True):
        if row["origin"] == ORIGIN_REVIEWER:
            kind = "added"
        elif row["removed"] is not None:
            kind = "removed"
        elif row["reviewed_class"] is not None:
            kind = "reclassified"
        else:
            continue
        rec: dict[str, Any] = {"cell_id": int(row["cell_id"]), "kind": kind,
                               "predicted_class": row["predicted_class"], "reviewed_class": row["reviewed_class"]}  # fmt: skip
        if kind == "removed":
            rec["reason"] = row["removed"]
        if kind == "added":
            rec["x"], rec["y"] = round(float(row["x"]), 1), round(float(row["y"]), 1)
            if row["added_id"]:
                rec["added_id"] = row["added_id"]
        if row["review_comment"]:
            rec["comment"] = row["review_comment"]
        records.append(rec)
    return {"n_corrections": len(records), "corrections": records}
