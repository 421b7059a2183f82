"""Find a batch's inputs: sorted, deterministic, one output folder name per input."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wsi_screen.errors import InputError
from wsi_screen.sources import input_stem

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


def discover_inputs(
    locations: Sequence[Path],
    *,
    recursive: bool = False,
    pattern: str = "*",
    exclude: Iterable[Path] = (),
) -> list[BatchInput]:
    """List the files a batch screens, in a stable order.

    Every regular, non-hidden file matching ``pattern`` is an input, including files of an
    unsupported type: those fail in the ``read`` stage and are named in the summary instead of
    being skipped silently (use ``pattern="*.svs"`` to restrict a folder). Files under the
    ``exclude`` folders (the batch's own output folder) are ignored.

    Args:
        locations: folders (or single files), in the order given on the command line.
        recursive: also search sub-folders.
        pattern: a glob matched against file names (``*.svs``, ``case_*``).
        exclude: folders whose contents are never inputs.

    Returns:
        Inputs sorted by relative path within each location, locations in the order given;
        a file reached twice is listed once.

    Raises:
        InputError: a location does not exist or a folder yields no file at all.

    Example:
        >>> discover_inputs([Path("slides")], pattern="*.svs")  # doctest: +SKIP
    """
    skip = [p.resolve() for p in exclude]
    seen: set[Path] = set()
    found: list[tuple[Path, str]] = []
    for loc in locations:
        loc = Path(loc)
        if not loc.exists():
            msg = f"{loc}: no such file or folder"
            raise InputError(msg)
        if loc.is_file():
            candidates = [(loc, loc.name)]
        else:
            it = loc.rglob(pattern) if recursive else loc.glob(pattern)
            candidates = []
            for p in it:
                rel = p.relative_to(loc)
                if any(part.startswith(".") for part in rel.parts):
                    continue  # hidden files and our own temp files (.name.xyz.tmp)
                if not p.is_file():
                    continue
                resolved = p.resolve()
                if any(resolved.is_relative_to(s) for s in skip):
                    continue
                candidates.append((p, rel.as_posix()))
            candidates.sort(key=lambda c: c[1])
            if not candidates:
                log.warning("%s: no file matches %r%s", loc, pattern, " (recursive)" if recursive else "")
        for p, name in candidates:
            resolved = p.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            found.append((resolved, name))
    stems = batch_stems([name for _, name in found])
    return [BatchInput(p, name, stem) for (p, name), stem in zip(found, stems, strict=True)]


def batch_stems(names: Sequence[str]) -> list[str]:
    """Output folder names for relative input names, unique and filesystem-safe.

    ``sub/a.ome.tiff`` becomes ``sub__a``; clashes (``a.png`` and ``a.tif``) get ``-2``, ``-3``...
    in input order, so the same file list always maps to the same folders.

    Example:
        >>> batch_stems(["a.png", "a.tif", "x/b.svs"])
        ['a', 'a-2', 'x__b']
    """
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        parts = name.split("/")
        base = "__".join([*parts[:-1], input_stem(Path(parts[-1]))])
        base = _UNSAFE.sub("_", base).strip(".") or "input"
        stem, n = base, 1
        while stem in taken:
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem)
        out.append(stem)
    return out
