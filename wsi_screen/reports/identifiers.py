"""Sample and patient identifiers of a report: given by the lab, never guessed from file names.

They come, in this order of precedence, from

1. options (``--sample-id``, ``--patient-id``: one input),
2. a manifest (``--ids FILE``, CSV with a header: ``input`` and/or ``sha256``, then ``sample_id``,
   ``patient_id``; ``input`` is the input's path relative to the manifest's folder, or absolute),
3. a sidecar file beside the input, ``<input file name>.ids.json``, holding
   ``{"sample_id": "...", "patient_id": "..."}``.

An input with none of them has no identifiers, and its report says so. Values are checked (1-64
printable characters, no control characters); a bad value is an error naming the file and key.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsi_screen.errors import InputError
from wsi_screen.textfiles import parse_json
from wsi_screen.textfiles import read_text

SIDECAR_SUFFIX = ".ids.json"
ID_KEYS = ("sample_id", "patient_id")
MAX_ID_LENGTH = 64
MAX_SIDECAR_BYTES = 64 << 10
"""Largest identifiers sidecar read (two identifiers of 64 characters need a few hundred bytes)."""
MAX_MANIFEST_BYTES = 16 << 20
"""Largest identifiers manifest read (over 100,000 rows)."""


@dataclass(frozen=True)
class SampleIdentifiers:
    """Identifiers of one input and where they came from (``option``, ``manifest`` or ``sidecar``)."""

    sample_id: str | None
    patient_id: str | None
    source: str
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``identifiers`` block of report.json."""
        return {
            "sample_id": self.sample_id,
            "patient_id": self.patient_id,
            "source": self.source,
            "file": self.file,
        }


def check_identifier(value: Any, *, where: str, key: str) -> str | None:
    """A clean identifier, or None for an empty value.

    Raises:
        InputError: not a string, too long, or holding control characters; names ``where`` and ``key``.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{where}: {key} must be a string, got {value!r:.40}"
        raise InputError(msg)
    text = unicodedata.normalize("NFC", value.strip())
    if not text:
        return None
    if len(text) > MAX_ID_LENGTH:
        msg = f"{where}: {key} is {len(text)} characters long; at most {MAX_ID_LENGTH}"
        raise InputError(msg)
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        msg = f"{where}: {key} holds control or unprintable characters: {text!r:.80}"
        raise InputError(msg)
    return text


def sidecar_path(input_path: Path) -> Path:
    """``<input file name>.ids.json`` beside the input (``a.svs`` -> ``a.svs.ids.json``)."""
    return input_path.with_name(input_path.name + SIDECAR_SUFFIX)


def read_sidecar(input_path: Path) -> SampleIdentifiers | None:
    """The identifiers of the sidecar file beside ``input_path``, or None when there is none.

    Raises:
        InputError: the sidecar is not a JSON object of known keys with valid values (names the file).
    """
    path = sidecar_path(Path(input_path))
    if not path.is_file():
        return None
    # size capped before reading, nesting limited: a bad sidecar is this input's one-line error
    doc = parse_json(read_text(path, error=InputError, max_bytes=MAX_SIDECAR_BYTES), path, error=InputError)
    if not isinstance(doc, dict):
        msg = f'{path}: expected a JSON object like {{"sample_id": "...", "patient_id": "..."}}'
        raise InputError(msg)
    unknown = sorted(set(doc) - set(ID_KEYS))
    if unknown:
        msg = f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(ID_KEYS)}"
        raise InputError(msg)
    ids = {k: check_identifier(doc.get(k), where=str(path), key=k) for k in ID_KEYS}
    if not any(ids.values()):
        return None
    return SampleIdentifiers(ids["sample_id"], ids["patient_id"], "sidecar", path.name)


@dataclass(frozen=True)
class Manifest:
    """A lab's table of identifiers, by input path (resolved) and by sha256."""

    path: Path
    by_path: dict[Path, SampleIdentifiers]
    by_sha256: dict[str, SampleIdentifiers]

    def lookup(self, input_path: Path, sha256: str | None = None) -> SampleIdentifiers | None:
        """The row of an input: by its path first, else by its sha256."""
        hit = self.by_path.get(Path(input_path).resolve())
        if hit is None and sha256:
            hit = self.by_sha256.get(sha256.lower())
        return hit


def read_manifest(path: Path) -> Manifest:
    """Read an identifiers manifest (CSV, header row; see the module docstring).

    Raises:
        InputError: unreadable, no ``input``/``sha256`` column, an unknown column, a bad value, or
            one input listed twice; the message names the file and the row.
    """
    path = Path(path)
    text = read_text(path, error=InputError, max_bytes=MAX_MANIFEST_BYTES).removeprefix("\ufeff")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        header = rows[0].keys() if rows else []
    except csv.Error as e:
        msg = f"{path}: cannot read the identifiers manifest: {e}"
        raise InputError(msg) from e
    known = {"input", "sha256", *ID_KEYS}
    unknown = sorted(set(header) - known)
    if unknown:
        msg = f"{path}: unknown column(s) {', '.join(unknown)}; columns are input, sha256, sample_id, patient_id"
        raise InputError(msg)
    if rows and not ({"input", "sha256"} & set(header)):
        msg = f"{path}: needs an 'input' or a 'sha256' column to say which input each row is"
        raise InputError(msg)
    by_path: dict[Path, SampleIdentifiers] = {}
    by_sha: dict[str, SampleIdentifiers] = {}
    for n, row in enumerate(rows, start=2):
        where = f"{path} row {n}"
        ids = {k: check_identifier(row.get(k), where=where, key=k) for k in ID_KEYS}
        entry = SampleIdentifiers(ids["sample_id"], ids["patient_id"], "manifest", path.name)
        name, sha = (row.get("input") or "").strip(), (row.get("sha256") or "").strip().lower()
        if not name and not sha:
            msg = f"{where}: neither 'input' nor 'sha256' given"
            raise InputError(msg)
        if name:
            key = (path.parent / name).resolve()
            if key in by_path:
                msg = f"{where}: input {name!r} is listed twice"
                raise InputError(msg)
            by_path[key] = entry
        if sha:
            if sha in by_sha:
                msg = f"{where}: sha256 {sha[:12]}… is listed twice"
                raise InputError(msg)
            by_sha[sha] = entry
    return Manifest(path, by_path, by_sha)


def resolve_identifiers(
    input_path: Path,
    *,
    sample_id: str | None = None,
    patient_id: str | None = None,
    manifest: Manifest | None = None,
    sha256: str | None = None,
) -> SampleIdentifiers | None:
    """The identifiers of one input: options, else its manifest row, else its sidecar, else None.

    Raises:
        InputError: a bad option value, manifest row or sidecar (the message names it).
    """
    opts = {
        "sample_id": check_identifier(sample_id, where="--sample-id", key="sample_id"),
        "patient_id": check_identifier(patient_id, where="--patient-id", key="patient_id"),
    }
    if any(opts.values()):
        return SampleIdentifiers(opts["sample_id"], opts["patient_id"], "option")
    if manifest is not None:
        hit = manifest.lookup(input_path, sha256)
        if hit is not None:
            return hit
    return read_sidecar(Path(input_path))


@dataclass(frozen=True)
class IdentifierSource:
    """Where a run takes identifiers from: options (one input), a manifest, and always the sidecars."""

    sample_id: str | None = None
    patient_id: str | None = None
    manifest: Manifest | None = None

    def for_input(self, input_path: Path, sha256: str | None = None) -> SampleIdentifiers | None:
        """The identifiers of one input (see :func:`resolve_identifiers`)."""
        return resolve_identifiers(
            input_path,
            sample_id=self.sample_id,
            patient_id=self.patient_id,
            manifest=self.manifest,
            sha256=sha256,
        )
