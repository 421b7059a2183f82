"""Find a batch's inputs: sorted, deterministic, one output folder name per input.

Output folder names are stable across runs into the same OUT: an input the ledger already names
keeps the folder recorded there, and only new inputs get new names (never one the ledger holds),
so adding a file whose name clashes never moves an existing input's results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wsi_screen.errors import InputError
from wsi_screen.errors import WsiScreenError
from wsi_screen.ledger import ledger_lines
from wsi_screen.outnames import clean_stem
from wsi_screen.outnames import is_clean
from wsi_screen.sources import input_stem
from wsi_screen.sources import is_case_folder
from wsi_screen.sources import is_dicom_folder
from wsi_screen.sources import not_regular

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchInput:
    """One input file of a batch.

    Attributes:
        path: the file, absolute.
        name: its path relative to the folder it was found in, POSIX style (``sub/a.svs``);
            the summary's ``input`` column and the ledger's key.
        stem: the output folder name, unique within the batch (OUT/<stem>/).
    """

    path: Path
    name: str
    stem: str
    skip_reason: str | None = None
    """Why this is listed but not screened (a sidecar beside the images); None for an input."""

    @property
    def is_case(self) -> bool:
        """A folder of fields: screened as one case (a folder of DICOM instances is one slide)."""
        return self.skip_reason is None and is_case_folder(self.path)


def discover_inputs(
    locations: Sequence[Path],
    *,
    recursive: bool = False,
    pattern: str | Sequence[str] = "*",
    exclude: Iterable[Path] = (),
    known_stems: Mapping[str, Sequence[str]] | None = None,
    cases: bool = True,
) -> list[BatchInput]:
    """List the files (and cases) a batch screens, in a stable order.

    Every regular, non-hidden image file matching ``pattern`` (any of them, when several) is an
    input, broken symbolic links and damaged files included: those fail in the ``read`` stage and
    are named in the summary. A file that is not an image (``field_00.json``, ``notes.txt``: a
    sidecar), and a FIFO, device or socket whatever its name, is listed with a ``skip_reason`` and
    never screened (nor opened), so it never takes an image's output name. Without ``recursive``, each sub-folder of a location is a *case* (the fields of
    one specimen, screened into one pooled report) when ``cases`` is on. Files under the
    ``exclude`` folders (the batch's own output folder) are ignored.

    Args:
        locations: folders (or single files), in the order given on the command line.
        recursive: also search sub-folders.
        pattern: a glob matched against file names (``*.svs``, ``case_*``), or several: a file
            matching any of them is an input (listed once).
        exclude: folders whose contents are never inputs.
        known_stems: output folder names earlier runs gave each input name
            (:func:`recorded_stems`); see :func:`batch_stems`.

    Returns:
        Inputs sorted by relative path within each location, locations in the order given;
        a file reached twice is listed once.

    Raises:
        InputError: a location does not exist or a folder yields no file at all.

    Example:
        >>> discover_inputs([Path("slides")], pattern="*.svs")  # doctest: +SKIP
    """
    skip = [p.resolve() for p in exclude]
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    seen: set[Path] = set()
    found: list[tuple[Path, str]] = []
    for loc in locations:
        loc = Path(loc)
        if not loc.exists():
            msg = f"{loc}: no such file or folder"
            raise InputError(msg)
        if loc.is_file() or not_regular(loc) or is_dicom_folder(loc):
            candidates = [(loc, loc.name)]  # a FIFO or device given by name: listed, skipped
        else:
            matched = {p for pat in patterns for p in (loc.rglob(pat) if recursive else loc.glob(pat))}
            if cases and not recursive:
                matched |= {p for p in loc.iterdir() if p.is_dir() and any(p.match(pat) for pat in patterns)}
            if recursive:
                matched = _dicom_series_as_one(matched)
            candidates = []
            for p in matched:
                rel = p.relative_to(loc)
                if any(part.startswith(".") for part in rel.parts):
                    continue  # hidden files and our own temp files (.name.xyz.tmp)
                dangling = p.is_symlink() and not p.exists()  # listed: it fails, named, at read
                case = (cases and not recursive and p.is_dir()) or is_dicom_folder(p)
                special = not_regular(p) is not None  # a FIFO or device: listed as skipped, never opened
                if not p.is_file() and not dangling and not case and not special:
                    continue
                if any(_resolve(p).is_relative_to(s) for s in skip):
                    continue
                candidates.append((p, rel.as_posix()))
            candidates.sort(key=lambda c: c[1])
            if not candidates:
                globs = " or ".join(repr(p) for p in patterns)
                log.warning("%s: no file matches %s%s", loc, globs, " (recursive)" if recursive else "")
        for p, name in candidates:
            resolved = _resolve(p)
            if resolved in seen:
                continue
            seen.add(resolved)
            found.append((resolved, name))
    why = {p: _skip_reason(p) for p, _ in found}  # once per path: a folder is listed to judge it
    inputs = [(p, name) for p, name in found if why[p] is None]
    stems = batch_stems([name for _, name in inputs], known_stems)
    listed = [BatchInput(p, name, stem) for (p, name), stem in zip(inputs, stems, strict=True)]
    listed += [BatchInput(p, name, "", why[p]) for p, name in found if why[p] is not None]
    order = {name: k for k, (_, name) in enumerate(found)}
    return sorted(listed, key=lambda b: order[b.name])


def _skip_reason(path: Path) -> str | None:
    """Why ``path`` is listed but not screened: a sidecar, a folder without field images, a FIFO...

    A FIFO, device or socket is told by ``stat`` and never opened (opening a FIFO blocks for ever).
    """
    from wsi_screen.cases import SIDECAR
    from wsi_screen.sources import is_supported

    special = not_regular(path)
    if special is not None:
        return special
    if is_dicom_folder(path):
        return None  # the instances of one DICOM series: one slide
    if path.is_dir():
        from wsi_screen.cases import case_from_folder

        try:
            case_from_folder(path)
        except InputError:
            return "a folder without field images (not a case)"
        return None
    if path.exists() and not is_supported(path):
        return SIDECAR
    return None


def _dicom_series_as_one(matched: set[Path]) -> set[Path]:
    """With ``--recursive``: the files of a folder of DICOM instances stand for that folder, one slide."""
    series: dict[Path, bool] = {}
    out: set[Path] = set()
    for p in matched:
        parent = p.parent
        if parent not in series:
            series[parent] = is_dicom_folder(parent)
        out.add(parent if series[parent] and not p.is_dir() else p)
    return out


def _resolve(path: Path) -> Path:
    """``path`` resolved; a symlink loop stays as it is (listed, it then fails by name at read)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def batch_stems(names: Sequence[str], known: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Output folder names for relative input names, unique and filesystem-safe.

    ``sub/a.ome.tiff`` becomes ``sub__a``; clashes (``a.png`` and ``a.tif``) get ``-2``, ``-3``...
    in input order, so the same file list always maps to the same folders. A name in ``known``
    (folders recorded by earlier runs, first recorded first) keeps its recorded folder; the k-th
    input of one name (the same relative name in several folders) takes its k-th recorded folder.
    New inputs never take a recorded folder, so an existing input's folder never changes when
    files are added.

    Example:
        >>> batch_stems(["a.png", "a.tif", "x/b.svs"])
        ['a', 'a-2', 'x__b']
        >>> batch_stems(["a.png", "a.tif"], known={"a.tif": ["a"]})
        ['a-2', 'a']
    """
    known = known or {}
    taken = {stem for stems in known.values() for stem in stems}
    out: list[str | None] = []
    assigned: set[str] = set()
    for name in names:
        stem = next((s for s in known.get(name, ()) if s not in assigned and _is_stem(s)), None)
        if stem is not None:
            assigned.add(stem)
        out.append(stem)
    for i, name in enumerate(names):
        if out[i] is not None:
            continue
        parts = name.split("/")
        base = "__".join([*parts[:-1], input_stem(Path(parts[-1]))])
        base = clean_stem(base)
        stem, n = base, 1
        while stem in taken:
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem)
        out[i] = stem
    return [s for s in out if s is not None]


def _is_stem(stem: str) -> bool:
    """Whether a recorded folder name is one :func:`batch_stems` could have made (not a path)."""
    return is_clean(stem)


def recorded_stems(ledger_path: Path) -> dict[str, list[str]]:
    """The output folders earlier runs gave each input name, from OUT/ledger.jsonl.

    Returns:
        Input name -> folder names in the order first recorded; empty without a ledger.
        Unreadable lines (one torn by a kill) are skipped, as :class:`wsi_screen.ledger.Ledger` does.
    """
    try:  # read bounded, each line with a nesting limit: a planted line is skipped, never fatal
        lines = ledger_lines(ledger_path, warn=False)  # Ledger.load warns
    except WsiScreenError as e:
        log.warning("cannot read the output folder names recorded there: %s", e)
        return {}
    out: dict[str, list[str]] = {}
    for entry in lines:
        name = entry.get("input") if isinstance(entry, dict) else None
        stem = entry.get("stem") if isinstance(entry, dict) else None
        if isinstance(name, str) and isinstance(stem, str) and stem not in out.setdefault(name, []):
            out[name].append(stem)
    return out
