"""Atomic file writes: a temp file in the same folder, then rename, so no half-written outputs.

Outputs get the permissions a plain ``open()`` would give them (``0o666`` less the umask), not
the private ``0o600`` of :func:`tempfile.mkstemp`, so a lab's other users can read the reports.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsi_screen.errors import OutputError

_log = logging.getLogger(__name__)

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""``os.open`` flag that makes opening a symbolic link fail (0 where the platform lacks it)."""


def refuse_symlink(path: Path) -> None:
    """Raise :class:`OutputError` when ``path`` is a symbolic link (a dangling one too).

    wsi-screen never writes, appends or creates files through a link inside its output folder:
    a planted ``OUT/field_00 -> /elsewhere`` would otherwise receive that input's reports.
    """
    if path.is_symlink():
        msg = f"{path}: is a symbolic link; wsi-screen does not write through links in its output folder"
        raise OutputError(msg)


def refuse_links(paths: Iterable[Path]) -> None:
    """:func:`refuse_symlink` for each of ``paths``: check every output of a step before writing any."""
    for path in paths:
        refuse_symlink(path)


def real_dir(path: Path) -> Path:
    """Create folder ``path`` (and parents) and check it is a real folder, not a link to one."""
    refuse_symlink(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        msg = f"{path}: exists and is not a folder"
        raise OutputError(msg) from e
    except OSError as e:
        msg = f"{path}: cannot create the output folder: {e.strerror}"
        raise OutputError(msg) from e
    refuse_symlink(path)  # created by someone else in between
    return path


def open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` with a one-line :class:`OutputError`."""
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as e:
        if path.is_symlink():
            msg = f"{path}: is a symbolic link; wsi-screen does not write through links in its output folder"
            raise OutputError(msg) from e
        raise


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temp file (``.<name>.<random>.tmp``) is created with mode ``0o666`` so the kernel applies
    the umask (and any default ACL) exactly as for ``open(path, "w")``; that mode is set again
    before the rename in case the writer replaced the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_symlink(path)
    tmp, mode = _create_temp(path)
    try:
        yield tmp
        tmp.chmod(mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _create_temp(path: Path) -> tuple[Path, int]:
    """Create a new, empty temp file beside ``path``; return it and the mode it was created with."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            mode = os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)
        return tmp, mode
    msg = f"{path.parent}: cannot create a temporary file for {path.name}"  # pragma: no cover
    raise FileExistsError(msg)  # pragma: no cover


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_npy(path: str | Path, array: object) -> None:
    """Write a numpy array as ``.npy`` atomically (a link at ``path`` is refused, not followed)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_with(path: str | Path, writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks.

    Results are memoised per (path, size, modification time), so the batch ledger and the report
    writer hash a multi-gigabyte slide once per process.
    """
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, chunk)


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int, chunk: int) -> str:
    del size, mtime_ns  # part of the cache key only
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_now(path: str | Path) -> str:
    """sha256 of a file read now, never memoised: what checks a file against a recorded hash use."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is a temp file of :func:`wsi_screen.io.atomic_path` (``.name.xyz.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _is_temp_dir(path: Path) -> bool:
    """A folder built aside and renamed into place (``.viewer.xyz.tmp``) or one being replaced (``.xyz.old``)."""
    return path.name.startswith(".") and path.name.endswith((".tmp", ".old"))


def clean_temp_files(folder: Path, *, depth: int = 3) -> list[Path]:
    """Delete temp files and folders left in ``folder`` (and its sub-folders, ``depth`` levels) by a killed run.

    Outputs are only ever renamed into place complete, so a temp file is always garbage.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink() and _is_temp_dir(entry):
            shutil.rmtree(entry, ignore_errors=True)  # a viewer folder being written or replaced
            removed.append(entry)
        elif entry.is_dir() and not entry.is_symlink() and depth > 1:
            removed += clean_temp_files(entry, depth=depth - 1)
        elif entry.is_file() and is_temp_file(entry):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed and depth == 3:
        _log.info("%s: removed %d temp file(s) left by an interrupted run", folder, len(removed))
    return removed
