"""Cases: the fields of one specimen screened together into one report.

A morphologist reports on a specimen, not a picture: 500 cells from the countable parts of a smear,
which a lab photographs as 10-20 fields. A *case* is a folder of field images (or the files named
with ``--case NAME``); its report pools every field's cells. Anything in the folder that is not an
image (``field_00.json``, ``notes.txt``: sidecars) is listed as skipped, never screened or failed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_screen.errors import InputError
from wsi_screen.outnames import clean_stem
from wsi_screen.sources import input_stem
from wsi_screen.sources import is_dicom_folder
from wsi_screen.sources import is_supported
from wsi_screen.sources import not_regular
from wsi_screen.types import Cell
from wsi_screen.types import CellCalls
from wsi_screen.types import concat_domain

SIDECAR = "not an image (a sidecar file)"
SUBFOLDER = "a folder inside a case (not searched)"
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Skipped:
    """A file found beside the images and left out, with why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class CaseSpec:
    """The inputs of one case.

    Attributes:
        name: the case name (the folder's name, or ``--case NAME``); its output folder.
        folder: the case folder, None for files named on the command line.
        fields: the field images, in natural name order (``f2`` before ``f10``).
        skipped: sidecars and sub-folders found beside them.
    """

    name: str
    folder: Path | None
    fields: tuple[Path, ...]
    skipped: tuple[Skipped, ...] = ()

    def field_names(self) -> list[str]:
        """Unique output names of the fields, for ``fields/<name>/`` and the ``field`` column.

        Each is the file stem made safe by :func:`wsi_screen.outnames.clean_stem` (a field named
        ``...png``, ``<img ...>.png`` or with control characters gets a plain folder name inside
        ``fields/``), ``-2`` ... on a clash.
        """
        return _unique([clean_stem(input_stem(p)) for p in self.fields])

    def digest(self) -> str:
        """The case's content hash: sha256 over its fields' names and contents, in field order.

        report.json's ``input.sha256`` of a case, and a batch's key for it: any field added,
        removed, renamed or changed makes a new case. The names hashed are the file stems as
        they are (not the output names), so a case keeps its key across versions.

        Raises:
            OSError: a field cannot be read.
        """
        from wsi_screen.io import sha256_file

        stems = _unique([input_stem(p) for p in self.fields])
        lines = [f"{name}\t{sha256_file(p)}" for name, p in zip(stems, self.fields, strict=True)]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _unique(bases: list[str]) -> list[str]:
    """``bases`` with ``-2``, ``-3`` ... added to names seen before."""
    names: list[str] = []
    for base in bases:
        stem, n = base, 1
        while stem in names:
            n += 1
            stem = f"{base}-{n}"
        names.append(stem)
    return names


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers by value (``field_2`` before ``field_10``).

    Example:
        >>> sorted(["f10.png", "f2.png", "f1.png"], key=natural_key)
        ['f1.png', 'f2.png', 'f10.png']
    """
    return tuple((0, int(t)) if t.isdigit() else (1, t.lower()) for t in _DIGITS.split(name) if t)


def case_from_folder(folder: Path, *, patterns: Sequence[str] = ("*",), name: str | None = None) -> CaseSpec:
    """The case of a folder of fields: every image directly inside matching ``patterns``.

    Hidden files are ignored; other files are :data:`SIDECAR`, sub-folders :data:`SUBFOLDER`.

    Raises:
        InputError: the folder does not exist or holds no image, naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        msg = f"{folder}: not a folder"
        raise InputError(msg)
    if is_dicom_folder(folder):
        msg = f"{folder}: a folder of DICOM instances is one slide, not a case of fields"
        raise InputError(msg)
    fields: list[Path] = []
    skipped: list[Skipped] = []
    try:
        entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    except OSError as e:
        msg = f"{folder}: cannot list the folder ({e.strerror})"
        raise InputError(msg) from e
    for p in entries:
        if p.name.startswith(".") or not any(p.match(pat) for pat in patterns):
            continue
        special = not_regular(p)  # a FIFO or device is never opened (a FIFO blocks for ever)
        if special is not None:
            skipped.append(Skipped(p, special))
        elif p.is_dir():
            skipped.append(Skipped(p, SUBFOLDER))
        elif is_supported(p):
            fields.append(p)
        else:
            skipped.append(Skipped(p, SIDECAR))
    if not fields:
        msg = f"{folder}: no field image in the folder (looked for {', '.join(patterns)}); a case is a folder of fields"
        raise InputError(msg)
    return CaseSpec(name or folder.name, folder, tuple(fields), tuple(skipped))


def case_from_files(paths: Sequence[Path], name: str) -> CaseSpec:
    """The case of files named on the command line (``wsi-screen run --case NAME a.png b.png``)."""
    if not name or name.strip(".") != name or "/" in name or "\\" in name:
        msg = f"--case {name!r}: a case name is a folder name (no path separators, not '.' or '..')"
        raise InputError(msg)
    fields = [Path(p) for p in paths if is_supported(Path(p)) and not_regular(Path(p)) is None]
    skipped = [Skipped(Path(p), not_regular(Path(p)) or SIDECAR) for p in paths if Path(p) not in fields]
    if not fields:
        msg = f"--case {name}: none of the files given is a field image"
        raise InputError(msg)
    return CaseSpec(name, None, tuple(fields), tuple(skipped))


def pool_calls(
    parts: Sequence[CellCalls], class_names: tuple[str, ...], classifier: str = ""
) -> tuple[CellCalls, list[int]]:
    """The calls of several fields as one record, cells renumbered 0..n-1 in field order.

    Returns:
        The pooled calls and, per cell, the index of its field in ``parts``.
    """
    cells: list[Cell] = []
    field_of: list[int] = []
    for i, part in enumerate(parts):
        for c in part.cells:
            cells.append(Cell(len(cells), c.source_id, c.x, c.y, c.bbox, c.score, c.detector, c.tile_index))
            field_of.append(i)
    probs = (
        np.concatenate([p.probs for p in parts]).astype(np.float32)
        if parts
        else np.zeros((0, len(class_names)), np.float32)
    )
    stats, ref = concat_domain(parts)
    return CellCalls(tuple(cells), probs, class_names, classifier, stats, ref), field_of
