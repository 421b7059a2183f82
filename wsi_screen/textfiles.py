"""Read the small text files a user hands in (JSON, TOML, CSV): bounded, strict, one-line errors.

Configuration, model metadata (``model.json``, ``detector.json``), identifiers sidecars and
manifests, corrections, reports and the files a report folder holds (``report_assets.json``,
``viewer/viewer.json``) and the batch ledger are read through here, so every one of them gets the
same guarantees: a regular file only (a FIFO or device is refused without blocking), a size cap
checked before the file is read (each caller passes the cap suited to its file), strict UTF-8, a
nesting limit (deeply nested JSON or TOML would otherwise end in a ``RecursionError`` traceback)
and an error of the caller's kind that names the file and the problem on one line: the caller
decides what it fails (one input, one command).
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from wsi_screen.errors import WsiScreenError

MAX_TEXT_BYTES = 16 << 20
"""Default size cap of a metadata or configuration file (16 MiB)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings accepted."""
MAX_FILE_LIST_BYTES = 64 << 20
"""Size cap of a list of data-set files (``split.json``, a held-out test list, ``evaluate --only``)."""


def check_size(path: str | Path, *, error: type[WsiScreenError], max_bytes: int) -> None:
    """Refuse a file over ``max_bytes`` (for files another library reads: Parquet, CSV via polars).

    Raises:
        error: the file is larger, or cannot be examined (the message names it).
    """
    try:
        size = Path(path).stat().st_size
    except OSError as e:
        msg = f"{path}: cannot read ({e.strerror or e})"
        raise error(msg) from e
    if size > max_bytes:
        msg = f"{path}: {size:,} bytes, more than the {max_bytes:,} allowed for this file"
        raise error(msg)


def read_bytes(path: str | Path, *, error: type[WsiScreenError], max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """Return the bytes of ``path``, refusing files over ``max_bytes`` before reading them.

    Only a regular file is read: a FIFO or a device (``/dev/zero``) is refused without blocking.

    Raises:
        error: the file is missing, unreadable, not a regular file or too large (the message names it).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                msg = f"{path}: not a regular file"
                raise error(msg)
            if st.st_size > max_bytes:
                msg = f"{path}: {st.st_size:,} bytes, more than the {max_bytes:,} allowed for this file"
                raise error(msg)
            data = f.read(max_bytes + 1)
    except OSError as e:
        msg = f"{path}: cannot read ({e.strerror or e})"
        raise error(msg) from e
    if len(data) > max_bytes:  # grew while read, or a pipe
        msg = f"{path}: more than the {max_bytes:,} bytes allowed for this file"
        raise error(msg)
    return data


def read_text(path: str | Path, *, error: type[WsiScreenError], max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Return the UTF-8 text of ``path``, refusing files over ``max_bytes`` before reading them.

    Raises:
        error: the file is missing, unreadable, too large or not UTF-8 (the message names it).
    """
    data = read_bytes(path, error=error, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        msg = f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        raise error(msg) from e


def read_file_list(
    path: str | Path, *, error: type[WsiScreenError], max_bytes: int = MAX_FILE_LIST_BYTES
) -> list[str]:
    """The lines of a list of files (one path a line; blank lines and ``#`` comments left out), read bounded.

    Raises:
        error: as :func:`read_text`.
    """
    lines = read_text(path, error=error, max_bytes=max_bytes).splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def depth(value: object) -> int:
    """Nesting depth of lists/tuples and mappings in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, d + 1)
        stack.extend((c, d + 1) for c in children)
    return deepest


def _check_depth(value: Any, where: str, error: type[WsiScreenError], max_depth: int) -> Any:
    if depth(value) > max_depth:
        msg = f"{where}: nested more than {max_depth} levels deep"
        raise error(msg)
    return value


def parse_json(
    text: str, where: str | Path, *, error: type[WsiScreenError], max_depth: int = MAX_DEPTH
) -> Any:
    """Parse JSON ``text`` (from ``where``) with a nesting limit.

    Raises:
        error: not valid JSON (with line and column), or nested too deeply.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        raise error(msg) from e
    except RecursionError as e:
        msg = f"{where}: nested more than {max_depth} levels deep"
        raise error(msg) from e
    return _check_depth(value, str(where), error, max_depth)


def parse_toml(
    text: str, where: str | Path, *, error: type[WsiScreenError], max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """Parse TOML ``text`` (from ``where``) with a nesting limit.

    Raises:
        error: not valid TOML, or nested too deeply.
    """
    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = f"{where}: not valid TOML ({e})"
        raise error(msg) from e
    except RecursionError as e:
        msg = f"{where}: nested more than {max_depth} levels deep"
        raise error(msg) from e
    return dict(_check_depth(value, str(where), error, max_depth))


def read_json(
    path: str | Path,
    *,
    error: type[WsiScreenError],
    max_bytes: int = MAX_TEXT_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """:func:`read_text` then :func:`parse_json`."""
    return parse_json(
        read_text(path, error=error, max_bytes=max_bytes), path, error=error, max_depth=max_depth
    )


def read_json_object(
    path: str | Path,
    *,
    error: type[WsiScreenError],
    max_bytes: int = MAX_TEXT_BYTES,
    max_depth: int = MAX_DEPTH,
) -> dict[str, Any]:
    """:func:`read_json`, refusing anything but a JSON object at the top level."""
    value = read_json(path, error=error, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        msg = f"{path}: expected a JSON object, got {type(value).__name__}"
        raise error(msg)
    return value


def read_toml(
    path: str | Path,
    *,
    error: type[WsiScreenError],
    max_bytes: int = MAX_TEXT_BYTES,
    max_depth: int = MAX_DEPTH,
) -> dict[str, Any]:
    """:func:`read_text` then :func:`parse_toml`."""
    return parse_toml(
        read_text(path, error=error, max_bytes=max_bytes), path, error=error, max_depth=max_depth
    )
