"""The items of a corrections file, checked against a cells table: reclassify, add, remove.

Version 2 items name their ``kind``:

- ``{"kind": "reclassify", "cell_id": 3, "class": "EBO", "predicted": "LYT", "comment": "..."}``
  (``predicted`` and ``comment`` optional; any class of the review scheme);
- ``{"kind": "remove", "cell_id": 5, "reason": "duplicate" | "not_a_cell", "comment": "..."}``;
- ``{"kind": "add", "add_id": "a1f3…", "x": 812.0, "y": 340.5, "class": "PLM", "comment": "..."}``
  (level-0 pixels; ``add_id`` the stable id the page gives the cell, so the file applied again sets
  that cell instead of adding it twice);
- ``{"kind": "comment", "cell_id": 7, "comment": "..."}``.

Each item states the end state of the cell it names. An item without ``kind`` is a reclassification
(``cell_id``, ``class``, ``predicted``: the only items of version 1 files); a version 1 file whose
items carry a ``kind`` is read like version 2.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from wsi_screen.errors import WsiScreenError
from wsi_screen.reports.reviewed import REMOVAL_REASONS
from wsi_screen.reports.reviewed import AddedCell
from wsi_screen.reports.reviewed import CellEdits

log = logging.getLogger(__name__)

KINDS = ("reclassify", "remove", "add", "comment")
MAX_COMMENT_CHARS = 2000
MAX_ADD_ID_CHARS = 64
MAX_ITEMS = 20_000
"""Items in one corrections file: every reclassification a reviewer makes on a slide, and room to spare;
100,000 added cells once left a report too large to be reviewed again."""
POSITION_TOLERANCE_PX = 1.0
"""How far a cell's ``x``/``y`` in a corrections file may be from the table's (rounding)."""
_REQUIRED = {"reclassify": ("cell_id", "class"), "remove": ("cell_id", "reason"), "add": ("x", "y", "class"),
             "comment": ("cell_id", "comment")}  # fmt: skip


def short_text(value: Any, where: str, error: type[WsiScreenError]) -> str | None:
    """A comment: None, or a string of at most :data:`MAX_COMMENT_CHARS` characters.

    Raises:
        error: not a string, or too long.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{where} must be text, got {value!r:.40}"
        raise error(msg)
    if len(value) > MAX_COMMENT_CHARS:
        msg = f"{where} has {len(value):,} characters; at most {MAX_COMMENT_CHARS} allowed"
        raise error(msg)
    return value


def parse_items(
    path: Path,
    items: list[Any],
    version: int,
    *,
    predicted: dict[int, str | None],
    class_names: list[str],
    error: type[WsiScreenError],
    image_size: tuple[int, int] | None = None,
    positions: dict[int, tuple[float, float]] | None = None,
) -> CellEdits:
    """Check every item of a corrections file and gather them as :class:`CellEdits`.

    Args:
        path: the corrections file (named in every error).
        items: its ``corrections`` list.
        version: its format version.
        predicted: cell id -> the model's class in this report's table (None for added cells).
        class_names: the classes a reviewer may assign.
        error: the exception raised.
        image_size: width and height of the input, for added cells.
        positions: cell id -> level-0 ``(x, y)`` in this report's table; given, every item that
            names a cell must give its ``x`` and ``y`` too, within :data:`POSITION_TOLERANCE_PX`
            (a file that does not record its screening).

    Raises:
        error: an item malformed, an unknown cell id or class code, or a ``predicted`` class or
            position that is not this table's (the corrections were made on another screening).
    """
    if len(items) > MAX_ITEMS:
        msg = f"{path}: {len(items):,} corrections; at most {MAX_ITEMS:,} allowed"
        raise error(msg)
    classes: dict[int, str] = {}
    removed: dict[int, str] = {}
    comments: dict[int, str] = {}
    added: list[AddedCell] = []
    bad_ids: list[str] = []
    bad_classes: set[str] = set()
    mismatch: tuple[int, str] | None = None
    twice: list[int] = []
    for k, item in enumerate(items):
        where = f"{path}: correction #{k + 1}"
        if not isinstance(item, dict):
            msg = f"{where} must be an object, got {item!r:.80}"
            raise error(msg)
        kind = item.get("kind", "reclassify")
        if kind not in KINDS:
            msg = f"{where}: unknown kind {kind!r:.40}; one of {', '.join(KINDS)}"
            raise error(msg)
        need = _REQUIRED[kind]
        if any(key not in item for key in need):
            msg = f"{where} must be an object with {' and '.join(repr(k) for k in need)}, got {item!r:.80}"
            raise error(msg)
        comment = short_text(item.get("comment"), f"{where}: 'comment'", error)
        cid: int = -1
        code: str = ""
        if kind != "add":
            cid = item.get("cell_id")  # type: ignore[assignment]
            if isinstance(cid, bool) or not isinstance(cid, int) or cid not in predicted:
                bad_ids.append(repr(cid)[:40])
                continue
            if positions is not None:
                _check_position(item, cid, positions[cid], where, error)
            if comment is not None:
                comments[cid] = comment
        if kind in ("reclassify", "add"):
            code = item.get("class")  # type: ignore[assignment]
            if not isinstance(code, str) or code not in class_names:
                bad_classes.add(repr(code)[:40])
                continue
        if kind == "reclassify":
            was = item.get("predicted")
            if was is not None and not isinstance(was, str):
                msg = f"{where}: 'predicted' must be a class code, got {was!r:.40}"
                raise error(msg)
            if was is not None and was != predicted[cid] and mismatch is None:
                mismatch = (cid, was)
            if cid in classes and classes[cid] != code:
                twice.append(cid)
            classes[cid] = code
            removed.pop(cid, None)
        elif kind == "remove":
            reason = item.get("reason")
            if reason not in REMOVAL_REASONS:
                msg = f"{where}: reason {reason!r:.40} is not one of {', '.join(REMOVAL_REASONS)}"
                raise error(msg)
            removed[cid] = reason
        elif kind == "add":
            add_id = _add_id(item.get("add_id"), where, error)
            added.append(AddedCell(*_position(item, where, error, image_size), code, comment, add_id))
    if twice:  # one line, however many: a file of 100,000 repeats once printed 100,000 warnings
        ids = ", ".join(str(c) for c in twice[:5]) + (" …" if len(twice) > 5 else "")
        log.warning("%s: %d correction(s) name a cell corrected before (cells %s); the later class is used",
                    path, len(twice), ids)  # fmt: skip
    if bad_ids:
        msg = f"{path}: unknown cell id(s) {', '.join(bad_ids[:10])}{' …' if len(bad_ids) > 10 else ''}; this report has cells 0..{max(predicted, default=-1)}"
        raise error(msg)
    if bad_classes:
        msg = f"{path}: unknown class code(s) {', '.join(sorted(bad_classes))}; a reviewer may assign {', '.join(class_names)}"
        raise error(msg)
    if mismatch is not None:
        cid, was = mismatch
        msg = f"{path}: cell {cid} was predicted {was} where the corrections were made, this report predicts {predicted[cid]}: made on another screening of this input; nothing applied"
        raise error(msg)
    return CellEdits(classes, removed, tuple(added), comments)


def _add_id(value: Any, where: str, error: type[WsiScreenError]) -> str | None:
    """An added cell's id: None, or 1 to :data:`MAX_ADD_ID_CHARS` printable characters.

    Raises:
        error: not such a string.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ADD_ID_CHARS or not value.isprintable():
        msg = f"{where}: 'add_id' must be 1-{MAX_ADD_ID_CHARS} printable characters, got {value!r:.40}"
        raise error(msg)
    return value


def _position(
    item: dict[str, Any], where: str, error: type[WsiScreenError], size: tuple[int, int] | None
) -> tuple[float, float]:
    """The level-0 pixel position of an added cell, inside the image when its size is known.

    Raises:
        error: not two finite numbers inside the image.
    """
    x, y = item.get("x"), item.get("y")
    w, h = size if size is not None else (math.inf, math.inf)
    ok = all(not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in (x, y))
    if not ok or not (0 <= float(x) < w and 0 <= float(y) < h):  # type: ignore[arg-type]
        inside = f"inside the {w} x {h} image" if size is not None else "of level-0 pixels"
        msg = f"{where}: 'x' and 'y' must be pixel positions {inside}, got ({x!r:.20}, {y!r:.20})"
        raise error(msg)
    return float(x), float(y)  # type: ignore[arg-type]


def _check_position(
    item: dict[str, Any], cid: int, at: tuple[float, float], where: str, error: type[WsiScreenError]
) -> None:
    """The ``x`` and ``y`` an item gives for its cell must be that cell's in this table.

    Raises:
        error: no position given, or another one (a cell id of another screening).
    """
    x, y = item.get("x"), item.get("y")
    if not all(not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in (x, y)):
        msg = (
            f"{where}: cell {cid} without its 'x' and 'y'; a corrections file without the 'screening' "
            f"record that report.html exports must give each cell's position, so that cell ids of "
            f"another screening are not applied to other cells; nothing applied"
        )
        raise error(msg)
    if abs(float(x) - at[0]) > POSITION_TOLERANCE_PX or abs(float(y) - at[1]) > POSITION_TOLERANCE_PX:  # type: ignore[arg-type]
        msg = (
            f"{where}: cell {cid} is at ({float(x):.1f}, {float(y):.1f}) in the corrections, at "  # type: ignore[arg-type]
            f"({at[0]:.1f}, {at[1]:.1f}) in this report: made on another screening of this input; nothing applied"
        )
        raise error(msg)
