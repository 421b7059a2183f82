"""The batch output folder: one batch at a time (a lock), and no stale temp files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsi_screen.errors import WsiScreenError

log = logging.getLogger(__name__)

LOCK_NAME = ".batch.lock"


@contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` so two batches never write the same folder.

    The lock is an ``flock`` on OUT/.batch.lock, released by the kernel when the process ends
    for any reason, so a killed batch never leaves a stale lock behind.

    Raises:
        WsiScreenError: another batch is writing to ``out``.
    """
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            msg = f"{out}: another wsi-screen batch is writing to this folder; wait for it or use another -o"
            raise WsiScreenError(msg) from e
        yield
    finally:
        os.close(fd)


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is a temp file of :func:`wsi_screen.io.atomic_path` (``.name.xyz.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def clean_temp_files(folder: Path, *, depth: int = 3) -> list[Path]:
    """Delete temp files left in ``folder`` (and its sub-folders, ``depth`` levels) by a killed run.

    Outputs are only ever renamed into place complete, so a temp file is always garbage.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink() and depth > 1:
            removed += clean_temp_files(entry, depth=depth - 1)
        elif entry.is_file() and is_temp_file(entry):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed and depth == 3:
        log.info("%s: removed %d temp file(s) left by an interrupted run", folder, len(removed))
    return removed
