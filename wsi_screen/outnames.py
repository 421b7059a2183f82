"""Output folder names: the one place where an input's name becomes OUT/<name>/.

``run`` and ``batch`` both name each input's folder through :func:`clean_stem`, so no input name
(``...png`` has the stem ``..``; ``a/b``, control characters, ``batch.log.png``) can make a folder
outside OUT, a hidden folder, or one that takes the place of a file wsi-screen writes into OUT.
"""

from __future__ import annotations

import re

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
"""Characters replaced by ``_`` in output names."""

RESERVED = frozenset(
    {
        "batch.log",
        "index.html",
        "ledger.jsonl",
        "run_metadata.json",
        "summary.csv",
        "summary.parquet",
        "review",
    }
)
"""Names of files and folders wsi-screen writes into OUT itself (compared case-insensitively)."""

MAX_LEN = 120
"""Longest output name (file systems allow 255 bytes; reports add their own file names below)."""


def clean_stem(base: str) -> str:
    """A filesystem-safe output folder name for the stem ``base``.

    Unsafe characters become ``_``; leading and trailing dots are dropped (no ``..``, no hidden
    folder); an empty result is ``input``; a name OUT's own files use gets a trailing ``_``.

    Example:
        >>> [clean_stem(s) for s in ["a b", "..", ".hidden", "x/../y", "summary.csv", ""]]
        ['a_b', 'input', 'hidden', 'x_.._y', 'summary.csv_', 'input']
    """
    stem = UNSAFE.sub("_", base)[:MAX_LEN].strip(".") or "input"
    return f"{stem}_" if stem.lower() in RESERVED else stem


def is_clean(stem: str) -> bool:
    """Whether ``stem`` is a name :func:`clean_stem` could have made (a recorded name, not a path)."""
    return bool(stem) and clean_stem(stem) == stem


def is_folder_name(name: object) -> bool:
    """Whether ``name`` (read from a report) is one folder inside its parent, not a path.

    Looser than :func:`is_clean` so that reports written before names were cleaned still read;
    it refuses what could leave the folder: ``.``, ``..``, separators, NUL and control characters.

    Example:
        >>> [is_folder_name(n) for n in ["a b", "..", "a/b", ""]]
        [True, False, False, False]
    """
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
        and len(name.encode("utf-8", "surrogateescape")) <= 255
    )
